from kubectl_dlm.cli import main

main()
