"""Names KubeVirt uses on the wire (dlm-state-machine.md §0). One place, so a typo cannot hide in a controller."""

# Labels and annotations (§0).
LABEL_VMI_NAME = "kubevirt.io/vmi-name"
LABEL_NODE_NAME = "kubevirt.io/nodeName"
LABEL_MIGRATION_TARGET_NODE = "kubevirt.io/migrationTargetNodeName"
LABEL_MIGRATION_JOB_UID = "kubevirt.io/migrationJobUID"  # on the target launcher pod (row 24)
ANN_RESTORE_RUN_STRATEGY = "kubevirt.io/restore-run-strategy"
ANN_CREATE_MIGRATION_TARGET = "kubevirt.io/create-migration-target"
ANN_LATEST_OBSERVED = "kubevirt.io/latest-observed-api-version"
ANN_STORAGE_OBSERVED = "kubevirt.io/storage-observed-api-version"
ANN_ALLOW_POD_BRIDGE_MIGRATION = "kubevirt.io/allow-pod-bridge-network-live-migration"

# Finalizers (§0).
FIN_MIGRATION_JOB = "kubevirt.io/migrationJobFinalize"
FIN_SYNC = "synchronization.kubevirt.io/migrationFinalizer"
FIN_VMI_FOREGROUND = "kubevirt.io/foregroundDeleteVirtualMachine"
FIN_VMI_CONTROLLER = "kubevirt.io/virtualMachineControllerFinalize"

# VMIM phases (T:1851-1873).
P_WAITING_FOR_SYNC = "WaitingForSync"
P_SYNCHRONIZING = "Synchronizing"
P_PENDING = "Pending"
P_SCHEDULING = "Scheduling"
P_SCHEDULED = "Scheduled"
P_PREPARING_TARGET = "PreparingTarget"
P_TARGET_READY = "TargetReady"
P_RUNNING = "Running"
P_SUCCEEDED = "Succeeded"
P_FAILED = "Failed"
FINAL_PHASES = (P_SUCCEEDED, P_FAILED)

# Conditions.
C_DLM_FAILURE = "DecentralizedLiveMigrationFailure"  # VMI (T:730)
R_DLM_NOT_MIGRATABLE = "DecentralizedNotLiveMigratable"  # its only reason (T:769)
C_DLM_BLOCKED = "decentralizedMigrationBlocked"  # VMIM (T:818)
C_ABORT_REQUESTED = "migrationAbortRequested"  # VMIM (T:813)
C_READY = "Ready"
C_LIVE_MIGRATABLE = "LiveMigratable"
C_STORAGE_LIVE_MIGRATABLE = "StorageLiveMigratable"
C_FAILURE = "Failure"  # VM

# Messages.
MSG_WAITING_FOR_SYNC = "waiting for incoming synchronization, unable to proceed"  # SC:424-427
MSG_POD_NOT_SCHEDULED = "virt-launcher pod has not yet been scheduled"  # LC:874-886
MSG_NON_RECEIVER_VMI = "Found non receiver VMI while VM is receiver"  # VMC:89

FEATURE_GATE = "DecentralizedLiveMigration"
INSTALL_NAMESPACE = "kubevirt"
CM_CA = "kubevirt-ca"
CM_EXTERNAL_CA = "kubevirt-external-ca"
CA_BUNDLE_KEY = "ca-bundle"

RUN_STRATEGIES = ("Halted", "Manual", "Always", "RerunOnFailure", "Once", "WaitAsReceiver")

# Field managers the simulated components write with (what managedFields shows on a real cluster).
MGR_CONTROLLER = "virt-controller"
MGR_HANDLER = "virt-handler"
MGR_API = "virt-api"
MGR_SYNC = "virt-synchronization-controller"
MGR_OPERATOR = "virt-operator"
MGR_CDI = "cdi-controller"
