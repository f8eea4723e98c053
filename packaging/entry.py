"""Entry point of the frozen executable (PyInstaller), not used by pip installs.

The same executable answers kubectl's completion calls when it is invoked under the name
kubectl_complete-dlm (a symlink or copy next to kubectl-dlm), so one download serves both.
"""

import os
import sys


def _invoked_as_completer() -> bool:
    name = os.path.basename(sys.argv[0]).lower()
    return name.startswith("kubectl_complete-")


if __name__ == "__main__":
    if _invoked_as_completer():
        from kubectl_dlm.completion import main
    else:
        from kubectl_dlm.cli import main
    main()
