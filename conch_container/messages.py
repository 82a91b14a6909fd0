"""The catalogue of message codes.

Every event the gateway logs carries one of these codes. The codes and their
explanations are ContainerSSH's, so that operators' log searches, alerts and
dashboards keep working; codes ContainerSSH does not have are marked as this
project's own in the generated catalogue (``docs/messages.md``).

Each constant is a :class:`MessageCode`: the code, the level it is logged at
unless a call site has a reason to differ (a retry logs at debug what the final
failure logs at error), the section it belongs to, and a one-sentence
explanation for the operator.
"""

from __future__ import annotations

from conch_container.codes import Level, MessageCode

CORE_CONFIG_CANNOT_WRITE_FILE = MessageCode(
    "CORE_CONFIG_CANNOT_WRITE_FILE",
    Level.WARNING,
    "Core",
    "ContainerSSH cannot update the configuration file with the new host keys and will only use the host key for the current run.",
)

CORE_CONFIG_ERROR = MessageCode(
    "CORE_CONFIG_ERROR",
    Level.ERROR,
    "Core",
    "ContainerSSH encountered an error in the configuration.",
)

CORE_CONFIG_FILE = MessageCode(
    "CORE_CONFIG_FILE",
    Level.DEBUG,
    "Core",
    "ContainerSSH is reading the configuration file",
)

CORE_HOST_KEY_GENERATION_FAILED = MessageCode(
    "CORE_HOST_KEY_GENERATION_FAILED",
    Level.ERROR,
    "Core",
    "ContainerSSH could not generate host keys and is aborting the run.",
)

CORE_NO_HOST_KEYS = MessageCode(
    "CORE_NO_HOST_KEYS",
    Level.WARNING,
    "Core",
    "The configuration does not contain host keys. ContainerSSH will attempt to generate host keys and update the configuration file.",
)

AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE = MessageCode(
    "AUDIT_S3_CANNOT_CLOSE_METADATA_FILE_HANDLE",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH could not close the metadata file in the local folder. This typically happens when the local folder is on an NFS share. (This is NOT supported.)",
)

AUDIT_S3_CLOSE_FAILED = MessageCode(
    "AUDIT_S3_CLOSE_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to close an audit log file in the local directory. This usually happens when the local directory is on an NFS share. (This is NOT supported.)",
)

AUDIT_S3_FAILED_CREATING_METADATA_FILE = MessageCode(
    "AUDIT_S3_FAILED_CREATING_METADATA_FILE",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to create the metadata file for the S3 upload in the local temporary directory. Check if the local directory specified is writable and has enough disk space.",
)

AUDIT_S3_FAILED_METADATA_JSON_ENCODING = MessageCode(
    "AUDIT_S3_FAILED_METADATA_JSON_ENCODING",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to encode the metadata file. This is a bug, please report it.",
)

AUDIT_S3_FAILED_READING_METADATA_FILE = MessageCode(
    "AUDIT_S3_FAILED_READING_METADATA_FILE",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to read the metadata file for the S3 upload in the local temporary directory. Check if the local directory specified is readable and the files have not been corrupted.",
)

AUDIT_S3_FAILED_STAT_QUEUE_ENTRY = MessageCode(
    "AUDIT_S3_FAILED_STAT_QUEUE_ENTRY",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to stat the queue file. This usually happens when the local directory is being manually manipulated.",
)

AUDIT_S3_FAILED_WRITING_METADATA_FILE = MessageCode(
    "AUDIT_S3_FAILED_WRITING_METADATA_FILE",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to write the local metadata file. Please check if your disk has enough disk space.",
)

AUDIT_S3_MULTIPART_ABORTING = MessageCode(
    "AUDIT_S3_MULTIPART_ABORTING",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH is aborting a multipart upload. Check the log message for details.",
)

AUDIT_S3_MULTIPART_FAILED_ABORT = MessageCode(
    "AUDIT_S3_MULTIPART_FAILED_ABORT",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed aborting a multipart upload from a previously crashed ContainerSSH run.",
)

AUDIT_S3_MULTIPART_FAILED_LIST = MessageCode(
    "AUDIT_S3_MULTIPART_FAILED_LIST",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to list multipart uploads on the object storage bucket. This is needed to abort uploads from a previously crashed ContainerSSH run.",
)

AUDIT_S3_MULTIPART_PART_UPLOADING = MessageCode(
    "AUDIT_S3_MULTIPART_PART_UPLOADING",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH is uploading a part of an audit log to the S3-compatible object storage.",
)

AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE = MessageCode(
    "AUDIT_S3_MULTIPART_PART_UPLOAD_COMPLETE",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH completed the upload of an audit log part to the S3-compatible object storage.",
)

AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED = MessageCode(
    "AUDIT_S3_MULTIPART_PART_UPLOAD_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to upload a part to the S3-compatible object storage. Check the message for details.",
)

AUDIT_S3_MULTIPART_UPLOAD = MessageCode(
    "AUDIT_S3_MULTIPART_UPLOAD",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH is starting a new S3 multipart upload.",
)

AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED = MessageCode(
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZATION_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH has uploaded all audit log parts, but could not finalize the multipart upload.",
)

AUDIT_S3_MULTIPART_UPLOAD_FINALIZED = MessageCode(
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZED",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH has uploaded all audit log parts and has successfully finalized the upload.",
)

AUDIT_S3_MULTIPART_UPLOAD_FINALIZING = MessageCode(
    "AUDIT_S3_MULTIPART_UPLOAD_FINALIZING",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH has uploaded all audit log parts and is now finalizing the multipart upload.",
)

AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED = MessageCode(
    "AUDIT_S3_MULTIPART_UPLOAD_INITIALIZATION_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to initialize a new multipart upload to the S3-compatible object storage. Check if the S3 configuration is correct and the provided S3 access key and secrets have permissions to start a multipart upload.",
)

AUDIT_S3_NO_SUCH_QUEUE_ENTRY = MessageCode(
    "AUDIT_S3_NO_SUCH_QUEUE_ENTRY",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH was trying to upload an audit log from the metadata file, but the audit log does not exist.",
)

AUDIT_S3_RECOVERING = MessageCode(
    "AUDIT_S3_RECOVERING",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH found a previously aborted multipart upload locally and is now attempting to recover the upload.",
)

AUDIT_S3_REMOVE_FAILED = MessageCode(
    "AUDIT_S3_REMOVE_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to remove an uploaded audit log from the local directory. This usually happens on Windows when a different process has the audit log open. (This is not a supported setup.)",
)

AUDIT_S3_SINGLE_UPLOAD = MessageCode(
    "AUDIT_S3_SINGLE_UPLOAD",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH is uploading the full audit log in a single upload to the S3-compatible object storage. This happens when the audit log size is below the minimum size for a multi-part upload.",
)

AUDIT_S3_SINGLE_UPLOAD_COMPLETE = MessageCode(
    "AUDIT_S3_SINGLE_UPLOAD_COMPLETE",
    Level.DEBUG,
    "Auditlog",
    "ContainerSSH successfully uploaded the audit log as a single upload.",
)

AUDIT_S3_SINGLE_UPLOAD_FAILED = MessageCode(
    "AUDIT_S3_SINGLE_UPLOAD_FAILED",
    Level.WARNING,
    "Auditlog",
    "ContainerSSH failed to upload the audit log as a single upload.",
)

AUDIT_STREAM_FAILED = MessageCode(
    "AUDIT_STREAM_FAILED",
    Level.ERROR,
    "Auditlog",
    "The audit storage failed to write a connection's audit log (a full disk, a removed directory), so nothing more is recorded for that connection; a second message at its end says how many messages were not recorded. The session itself goes on.",
    own=True,
)

AUDIT_STREAM_RESUMED = MessageCode(
    "AUDIT_STREAM_RESUMED",
    Level.WARNING,
    "Auditlog",
    "The audit storage is writing again after a stall; the message says how many messages (and bytes of data) of the connection were not recorded meanwhile.",
    own=True,
)

AUDIT_STREAM_STALLED = MessageCode(
    "AUDIT_STREAM_STALLED",
    Level.ERROR,
    "Auditlog",
    "A write to the audit storage did not return in time (a hung network filesystem), so the connection goes on without being recorded until the storage catches up, rather than freezing; at shutdown, audit logs not written within the deadline are lost.",
    own=True,
)

AUTH = MessageCode(
    "AUTH",
    Level.DEBUG,
    "Authentication",
    "ContainerSSH is trying to contact the authentication backend to verify the user credentials.",
)

AUTH_BACKEND_ERROR = MessageCode(
    "AUTH_BACKEND_ERROR",
    Level.ERROR,
    "Authentication",
    "The ContainerSSH authentication server responded with a non-200 status code. ContainerSSH will retry the authentication for a few times before giving up. This is most likely a bug in your authentication server, please check your logs.",
)

AUTH_FAILED = MessageCode(
    "AUTH_FAILED",
    Level.INFO,
    "Authentication",
    "The user has provided invalid credentials and the authentication is rejected.",
)

AUTH_INVALID_STATUS = MessageCode(
    "AUTH_INVALID_STATUS",
    Level.WARNING,
    "Authentication",
    "This message indicates that the authentication server returned an invalid HTTP status code.",
)

AUTH_NOT_SUPPORTED = MessageCode(
    "AUTH_NOT_SUPPORTED",
    Level.WARNING,
    "Authentication",
    "The authentication method the client requested is not supported by ContainerSSH.",
)

AUTH_SUCCESSFUL = MessageCode(
    "AUTH_SUCCESSFUL",
    Level.INFO,
    "Authentication",
    "The user has provided the correct credentials and the authentication is accepted.",
)

BACKEND_CONFIG_ERROR = MessageCode(
    "BACKEND_CONFIG_ERROR",
    Level.ERROR,
    "Backend",
    "The backend retreived from the configuration server is invalid. See the error message for details.",
)

CONFIG_BACKEND_ERROR = MessageCode(
    "CONFIG_BACKEND_ERROR",
    Level.ERROR,
    "Configuration",
    "ContainerSSH has received an invalid response from the configuration server or the network connection broke. ContainerSSH will retry fetching the user-specific configuration until the timeout. If this error persists check the connectivity to the configuration server, or the logs of the configuration server itself to find out of there may be a specific error.",
)

CONFIG_INVALID_STATUS_CODE = MessageCode(
    "CONFIG_INVALID_STATUS_CODE",
    Level.WARNING,
    "Configuration",
    "ContainerSSH has received a non-200 response code when calling a per-user backend configuration from the configuration server.",
)

CONFIG_REQUEST = MessageCode(
    "CONFIG_REQUEST",
    Level.DEBUG,
    "Configuration",
    "ContainerSSH is sending a quest to the configuration server to obtain a per-user backend configuration.",
)

CONFIG_RESPONSE = MessageCode(
    "CONFIG_RESPONSE",
    Level.DEBUG,
    "Configuration",
    "ContainerSSH has received a per-user backend configuration from the configuration server.",
)

CONFIG_SERVER_AVAILABLE = MessageCode(
    "CONFIG_SERVER_AVAILABLE",
    Level.NOTICE,
    "Configuration",
    "The ContainerSSH configuration server is now available at the specified address.",
)

DOCKER_AGENT_READ_FAILED = MessageCode(
    "DOCKER_AGENT_READ_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to read from the ContainerSSH agent. This is most likely because the ContainerSSH guest agent is not present in the guest image, but agent support is enabled.",
)

DOCKER_CLOSE_INPUT_FAILED = MessageCode(
    "DOCKER_CLOSE_INPUT_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module attempted to close the input (stdin) for reading but failed to do so.",
)

DOCKER_CLOSE_OUTPUT_FAILED = MessageCode(
    "DOCKER_CLOSE_OUTPUT_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module attempted to close the output (stdout and stderr) for writing but failed to do so.",
)

DOCKER_CONFIG_ERROR = MessageCode(
    "DOCKER_CONFIG_ERROR",
    Level.ERROR,
    "Docker",
    "The ContainerSSH Docker module detected a configuration error. Please check your configuration.",
)

DOCKER_CONTAINER_ATTACH = MessageCode(
    "DOCKER_CONTAINER_ATTACH",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is attaching to a container in session mode.",
)

DOCKER_CONTAINER_ATTACH_FAILED = MessageCode(
    "DOCKER_CONTAINER_ATTACH_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has failed to attach to a container in session mode.",
)

DOCKER_CONTAINER_CREATE = MessageCode(
    "DOCKER_CONTAINER_CREATE",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is creating a container.",
)

DOCKER_CONTAINER_CREATE_FAILED = MessageCode(
    "DOCKER_CONTAINER_CREATE_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to create a container. This may be a temporary and retried or a permanent error message. Check the log message for details.",
)

DOCKER_CONTAINER_REMOVE = MessageCode(
    "DOCKER_CONTAINER_REMOVE",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module os removing the container.",
)

DOCKER_CONTAINER_REMOVE_FAILED = MessageCode(
    "DOCKER_CONTAINER_REMOVE_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module could not remove the container. This message may be temporary and retried or permanent. Check the log message for details.",
)

DOCKER_CONTAINER_REMOVE_SUCCESSFUL = MessageCode(
    "DOCKER_CONTAINER_REMOVE_SUCCESSFUL",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module has successfully removed the container.",
)

DOCKER_CONTAINER_SHUTTING_DOWN = MessageCode(
    "DOCKER_CONTAINER_SHUTTING_DOWN",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is shutting down a container.",
)

DOCKER_CONTAINER_SIGNAL = MessageCode(
    "DOCKER_CONTAINER_SIGNAL",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is sending a signal to the container.",
)

DOCKER_CONTAINER_SIGNAL_FAILED = MessageCode(
    "DOCKER_CONTAINER_SIGNAL_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has failed to send a signal to the container.",
)

DOCKER_CONTAINER_START = MessageCode(
    "DOCKER_CONTAINER_START",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is starting the previously-created container.",
)

DOCKER_CONTAINER_START_FAILED = MessageCode(
    "DOCKER_CONTAINER_START_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH docker module failed to start the container. This message can either be temporary and retried or permanent. Check the log message for details.",
)

DOCKER_CONTAINER_STOP = MessageCode(
    "DOCKER_CONTAINER_STOP",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is stopping the container.",
)

DOCKER_CONTAINER_STOP_FAILED = MessageCode(
    "DOCKER_CONTAINER_STOP_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to stop the container. This message can be either temporary and retried or permanent. Check the log message for details.",
)

DOCKER_EXEC = MessageCode(
    "DOCKER_EXEC",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is creating an execution. This may be in connection mode, or it may be the module internally using the exec mechanism to deliver a payload into the container.",
)

DOCKER_EXEC_ATTACH = MessageCode(
    "DOCKER_EXEC_ATTACH",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is attaching to the previously-created execution.",
)

DOCKER_EXEC_ATTACH_FAILED = MessageCode(
    "DOCKER_EXEC_ATTACH_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module could not attach to the previously-created execution.",
)

DOCKER_EXEC_CREATE = MessageCode(
    "DOCKER_EXEC_CREATE",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is creating an execution.",
)

DOCKER_EXEC_CREATE_FAILED = MessageCode(
    "DOCKER_EXEC_CREATE_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has failed to create an execution. This can be temporary and retried or permanent. See the error message for details.",
)

DOCKER_EXEC_PID_READ_FAILED = MessageCode(
    "DOCKER_EXEC_PID_READ_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has failed to read the process ID from the [ContainerSSH Guest Agent](https://github.com/containerssh/agent). This is most likely because the guest image does not contain the guest agent, but guest agent support has been enabled.",
)

DOCKER_EXEC_RESIZE = MessageCode(
    "DOCKER_EXEC_RESIZE",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is resizing the console.",
)

DOCKER_EXEC_RESIZE_FAILED = MessageCode(
    "DOCKER_EXEC_RESIZE_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to resize the console.",
)

DOCKER_EXEC_SIGNAL = MessageCode(
    "DOCKER_EXEC_SIGNAL",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is delivering a signal in container mode.",
)

DOCKER_EXEC_SIGNAL_FAILED = MessageCode(
    "DOCKER_EXEC_SIGNAL_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to deliver a signal.",
)

DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT = MessageCode(
    "DOCKER_EXEC_SIGNAL_FAILED_NO_AGENT",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to deliver a signal because [ContainerSSH Guest Agent](https://github.com/containerssh/agent) support is disabled.",
)

DOCKER_EXEC_SIGNAL_SUCCESSFUL = MessageCode(
    "DOCKER_EXEC_SIGNAL_SUCCESSFUL",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module successfully delivered the requested signal.",
)

DOCKER_EXIT_CODE = MessageCode(
    "DOCKER_EXIT_CODE",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is fetching the exit code from the program.",
)

DOCKER_EXIT_CODE_CONTAINER_RESTARTING = MessageCode(
    "DOCKER_EXIT_CODE_CONTAINER_RESTARTING",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module could not fetch the exit code from the program because the container is restarting. This is typically a misconfiguration as ContainerSSH containers should not automatically restart.",
)

DOCKER_EXIT_CODE_FAILED = MessageCode(
    "DOCKER_EXIT_CODE_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has failed to fetch the exit code of the program.",
)

DOCKER_EXIT_CODE_NEGATIVE = MessageCode(
    "DOCKER_EXIT_CODE_NEGATIVE",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module has received a negative exit code from Docker. This should never happen and is most likely a bug.",
)

DOCKER_EXIT_CODE_STILL_RUNNING = MessageCode(
    "DOCKER_EXIT_CODE_STILL_RUNNING",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module could not fetch the program exit code because the program is still running. This error may be temporary and retried or permanent.",
)

DOCKER_GUEST_AGENT_DISABLED = MessageCode(
    "DOCKER_GUEST_AGENT_DISABLED",
    Level.WARNING,
    "Docker",
    "The [ContainerSSH Guest Agent](https://github.com/containerssh/agent) has been disabled, which is strongly discouraged. ContainerSSH requires the guest agent to be installed in the container image to facilitate all SSH features. Disabling the guest agent will result in breaking the expectations a user has towards an SSH server. We provide the ability to disable guest agent support only for cases where the guest agent binary cannot be installed in the image at all.",
)

DOCKER_IMAGE_LISTING = MessageCode(
    "DOCKER_IMAGE_LISTING",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is listing the locally present container images to determine if the specified container image needs to be pulled.",
)

DOCKER_IMAGE_LISTING_FAILED = MessageCode(
    "DOCKER_IMAGE_LISTING_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to list the images present in the local Docker daemon. This is used to determine if the image needs to be pulled. This can be because the Docker daemon is not reachable, the certificate is invalid, or there is something else interfering with listing the images.",
)

DOCKER_IMAGE_PULL = MessageCode(
    "DOCKER_IMAGE_PULL",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is pulling the container image.",
)

DOCKER_IMAGE_PULL_FAILED = MessageCode(
    "DOCKER_IMAGE_PULL_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to pull the specified container image. This can be because of connection issues to the Docker daemon, or because the Docker daemon itself can't pull the image. If you don't intend to have the image pulled you should set the `ImagePullPolicy` to `Never`. See the [Docker documentation](https://containerssh.io/reference/upcoming/docker) for details.",
)

DOCKER_IMAGE_PULL_NEEDED_CHECKING = MessageCode(
    "DOCKER_IMAGE_PULL_NEEDED_CHECKING",
    Level.DEBUG,
    "Docker",
    "The ContainerSSH Docker module is checking if an image pull is needed.",
)

DOCKER_PROGRAM_ALREADY_RUNNING = MessageCode(
    "DOCKER_PROGRAM_ALREADY_RUNNING",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module can't execute the request because the program is already running. This is a client error.",
)

DOCKER_SIGNAL_FAILED_NO_PID = MessageCode(
    "DOCKER_SIGNAL_FAILED_NO_PID",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module can't deliver a signal because no PID has been recorded. This is most likely because guest agent support is disabled.",
)

DOCKER_STREAM_INPUT_FAILED = MessageCode(
    "DOCKER_STREAM_INPUT_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to stream stdin to the Docker engine.",
)

DOCKER_STREAM_OUTPUT_FAILED = MessageCode(
    "DOCKER_STREAM_OUTPUT_FAILED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module failed to stream stdout and stderr from the Docker engine.",
)

DOCKER_SUBSYSTEM_NOT_SUPPORTED = MessageCode(
    "DOCKER_SUBSYSTEM_NOT_SUPPORTED",
    Level.WARNING,
    "Docker",
    "The ContainerSSH Docker module is not configured to run the requested subsystem.",
)

HTTP_CLIENT_CONNECTION_FAILED = MessageCode(
    "HTTP_CLIENT_CONNECTION_FAILED",
    Level.WARNING,
    "HTTP",
    "This message indicates a connection failure on the network level.",
)

HTTP_CLIENT_DECODE_FAILED = MessageCode(
    "HTTP_CLIENT_DECODE_FAILED",
    Level.WARNING,
    "HTTP",
    "This message indicates that decoding the JSON response has failed. The status code is set for this code.",
)

HTTP_CLIENT_ENCODE_FAILED = MessageCode(
    "HTTP_CLIENT_ENCODE_FAILED",
    Level.WARNING,
    "HTTP",
    "This message indicates that JSON encoding the request failed. This is usually a bug.",
)

HTTP_CLIENT_REDIRECT = MessageCode(
    "HTTP_CLIENT_REDIRECT",
    Level.DEBUG,
    "HTTP",
    "This message indicates that the server responded with a HTTP redirect.",
)

HTTP_CLIENT_REDIRECTS_DISABLED = MessageCode(
    "HTTP_CLIENT_REDIRECTS_DISABLED",
    Level.WARNING,
    "HTTP",
    "This message indicates that ContainerSSH is not following a HTTP redirect sent by the server. Use the allowRedirects option to allow following HTTP redirects.",
)

HTTP_CLIENT_REQUEST = MessageCode(
    "HTTP_CLIENT_REQUEST",
    Level.DEBUG,
    "HTTP",
    "This message indicates that a HTTP request is being sent from ContainerSSH",
)

HTTP_CLIENT_RESPONSE = MessageCode(
    "HTTP_CLIENT_RESPONSE",
    Level.DEBUG,
    "HTTP",
    "This message indicates that ContainerSSH received a HTTP response from a server.",
)

HTTP_SERVER_ENCODE_FAILED = MessageCode(
    "HTTP_SERVER_ENCODE_FAILED",
    Level.ERROR,
    "HTTP",
    "The HTTP server failed to encode the response object. This is a bug, please report it.",
)

HTTP_SERVER_RESPONSE_WRITE_FAILED = MessageCode(
    "HTTP_SERVER_RESPONSE_WRITE_FAILED",
    Level.WARNING,
    "HTTP",
    "The HTTP server failed to write the response.",
)

KUBERNETES_CLOSE_OUTPUT_FAILED = MessageCode(
    "KUBERNETES_CLOSE_OUTPUT_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module attempted to close the output (stdout and stderr) for writing but failed to do so.",
)

KUBERNETES_CONFIG_ERROR = MessageCode(
    "KUBERNETES_CONFIG_ERROR",
    Level.ERROR,
    "Kubernetes",
    "The ContainerSSH Kubernetes module detected a configuration error. Please check your configuration.",
)

KUBERNETES_EXEC = MessageCode(
    "KUBERNETES_EXEC",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is creating an execution. This may be in connection mode, or it may be the module internally using the exec mechanism to deliver a payload into the pod.",
)

KUBERNETES_EXEC_RESIZE = MessageCode(
    "KUBERNETES_EXEC_RESIZE",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is resizing the terminal window.",
)

KUBERNETES_EXEC_RESIZE_FAILED = MessageCode(
    "KUBERNETES_EXEC_RESIZE_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module failed to resize the console.",
)

KUBERNETES_EXEC_SIGNAL = MessageCode(
    "KUBERNETES_EXEC_SIGNAL",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is delivering a signal.",
)

KUBERNETES_EXEC_SIGNAL_FAILED = MessageCode(
    "KUBERNETES_EXEC_SIGNAL_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module failed to deliver a signal.",
)

KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT = MessageCode(
    "KUBERNETES_EXEC_SIGNAL_FAILED_NO_AGENT",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module failed to deliver a signal because guest agent support is disabled.",
)

KUBERNETES_EXEC_SIGNAL_SUCCESSFUL = MessageCode(
    "KUBERNETES_EXEC_SIGNAL_SUCCESSFUL",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module successfully delivered the requested signal.",
)

KUBERNETES_EXIT_CODE_FAILED = MessageCode(
    "KUBERNETES_EXIT_CODE_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module has failed to fetch the exit code of the program.",
)

KUBERNETES_GUEST_AGENT_DISABLED = MessageCode(
    "KUBERNETES_GUEST_AGENT_DISABLED",
    Level.WARNING,
    "Kubernetes",
    "The [ContainerSSH Guest Agent](https://github.com/podssh/agent) has been disabled, which is strongly discouraged. ContainerSSH requires the guest agent to be installed in the pod image to facilitate all SSH features. Disabling the guest agent will result in breaking the expectations a user has towards an SSH server. We provide the ability to disable guest agent support only for cases where the guest agent binary cannot be installed in the image at all.",
)

KUBERNETES_PID_RECEIVED = MessageCode(
    "KUBERNETES_PID_RECEIVED",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module has received a PID from the Kubernetes guest agent.",
)

KUBERNETES_POD_ATTACH = MessageCode(
    "KUBERNETES_POD_ATTACH",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is attaching to a pod in session mode.",
)

KUBERNETES_POD_CREATE = MessageCode(
    "KUBERNETES_POD_CREATE",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is creating a pod.",
)

KUBERNETES_POD_CREATE_FAILED = MessageCode(
    "KUBERNETES_POD_CREATE_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module failed to create a pod. This may be a temporary and retried or a permanent error message. Check the log message for details.",
)

KUBERNETES_POD_REMOVE = MessageCode(
    "KUBERNETES_POD_REMOVE",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is removing a pod.",
)

KUBERNETES_POD_REMOVE_FAILED = MessageCode(
    "KUBERNETES_POD_REMOVE_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module could not remove the pod. This message may be temporary and retried or permanent. Check the log message for details.",
)

KUBERNETES_POD_REMOVE_SUCCESSFUL = MessageCode(
    "KUBERNETES_POD_REMOVE_SUCCESSFUL",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module has successfully removed the pod.",
)

KUBERNETES_POD_SHUTTING_DOWN = MessageCode(
    "KUBERNETES_POD_SHUTTING_DOWN",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is shutting down a pod.",
)

KUBERNETES_POD_WAIT = MessageCode(
    "KUBERNETES_POD_WAIT",
    Level.DEBUG,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is waiting for the pod to come up.",
)

KUBERNETES_POD_WAIT_FAILED = MessageCode(
    "KUBERNETES_POD_WAIT_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module failed to wait for the pod to come up. Check the error message for details.",
)

KUBERNETES_PROGRAM_ALREADY_RUNNING = MessageCode(
    "KUBERNETES_PROGRAM_ALREADY_RUNNING",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module can't execute the request because the program is already running. This is a client error.",
)

KUBERNETES_PROGRAM_NOT_RUNNING = MessageCode(
    "KUBERNETES_PROGRAM_NOT_RUNNING",
    Level.WARNING,
    "Kubernetes",
    "This message indicates that the user requested an action that can only be performed when a program is running, but there is currently no program running.",
)

KUBERNETES_SIGNAL_FAILED_EXITED = MessageCode(
    "KUBERNETES_SIGNAL_FAILED_EXITED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module can't deliver a signal because the program already exited.",
)

KUBERNETES_SIGNAL_FAILED_NO_PID = MessageCode(
    "KUBERNETES_SIGNAL_FAILED_NO_PID",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module can't deliver a signal because no PID has been recorded. This is most likely because guest agent support is disabled.",
)

KUBERNETES_SUBSYSTEM_NOT_SUPPORTED = MessageCode(
    "KUBERNETES_SUBSYSTEM_NOT_SUPPORTED",
    Level.WARNING,
    "Kubernetes",
    "The ContainerSSH Kubernetes module is not configured to run the requested subsystem.",
)

KUBERUN_DEPRECATED = MessageCode(
    "KUBERUN_DEPRECATED",
    Level.WARNING,
    "Kubernetes",
    "This message indicates that you are still using the deprecated KubeRun backend. This backend doesn't support all safety and functionality improvements and will be removed in the future. Please read the [deprecation notice for a migration guide](https://containerssh.io/deprecations/kuberun)",
)

KUBERUN_EXEC_DISABLED = MessageCode(
    "KUBERUN_EXEC_DISABLED",
    Level.WARNING,
    "Kubernetes",
    "This message indicates that the user tried to execute a program, but program execution is disabled in the legacy KubeRun configuration.",
)

KUBERUN_INSECURE = MessageCode(
    "KUBERUN_INSECURE",
    Level.WARNING,
    "Kubernetes",
    'This message indicates that you are using Kubernetes in the "insecure" mode where certificate verification is disabled. This is a major security flaw, has been deprecated and is removed in the new Kubernetes backend. Please change your configuration to properly validates the server certificates.',
)

LOG_FILE_OPEN_FAILED = MessageCode(
    "LOG_FILE_OPEN_FAILED",
    Level.ERROR,
    "Log",
    "ContainerSSH failed to open the specified log file.",
)

LOG_ROTATE_FAILED = MessageCode(
    "LOG_ROTATE_FAILED",
    Level.ERROR,
    "Log",
    "ContainerSSH cannot rotate the logs as requested because of an underlying error.",
)

LOG_WRITE_FAILED = MessageCode(
    "LOG_WRITE_FAILED",
    Level.ERROR,
    "Log",
    "ContainerSSH cannot write to the specified log file. This usually happens because the underlying filesystem is full or the log is located on a non-local storage (e.g. NFS), which is not supported.",
)

LOG_LINES_DROPPED = MessageCode(
    "LOG_LINES_DROPPED",
    Level.ERROR,
    "Log",
    "The syslog daemon was unreachable or not keeping up, so the oldest log lines waiting for it were dropped; the count says how many. The message is sent as soon as lines reach the daemon again.",
    own=True,
)

TEST = MessageCode(
    "TEST",
    Level.DEBUG,
    "Log",
    "This is message that should only be seen in unit and component tests, never in production.",
)

UNKNOWN_ERROR = MessageCode(
    "UNKNOWN_ERROR",
    Level.ERROR,
    "Log",
    "This is an untyped error. If you see this in a log that is a bug and should be reported.",
)

METRICS_AVAILABLE = MessageCode(
    "METRICS_AVAILABLE",
    Level.NOTICE,
    "Metrics",
    "The metrics service is now online and ready for service.",
)

SECURITY_ENV_REJECTED = MessageCode(
    "SECURITY_ENV_REJECTED",
    Level.INFO,
    "Security",
    "ContainerSSH rejected setting the environment variable because it does not pass the security settings.",
)

SECURITY_EXEC_FAILED_SETENV = MessageCode(
    "SECURITY_EXEC_FAILED_SETENV",
    Level.WARNING,
    "Security",
    "Program execution failed in conjunction with the forceCommand option because ContainerSSH could not set the `SSH_ORIGINAL_COMMAND` environment variable on the backend.",
)

SECURITY_EXEC_FORCING_COMMAND = MessageCode(
    "SECURITY_EXEC_FORCING_COMMAND",
    Level.DEBUG,
    "Security",
    "ContainerSSH is replacing the command passed from the client (if any) to the specified command and is setting the `SSH_ORIGINAL_COMMAND` environment variable.",
)

SECURITY_EXEC_REJECTED = MessageCode(
    "SECURITY_EXEC_REJECTED",
    Level.INFO,
    "Security",
    "A program execution request has been rejected because it doesn't conform to the security settings.",
)

SECURITY_SHELL_REJECTED = MessageCode(
    "SECURITY_SHELL_REJECTED",
    Level.INFO,
    "Security",
    "ContainerSSH rejected launching a shell due to the security settings.",
)

SECURITY_SIGNAL_REJECTED = MessageCode(
    "SECURITY_SIGNAL_REJECTED",
    Level.INFO,
    "Security",
    "ContainerSSH rejected delivering a signal because it does not pass the security settings.",
)

SECURITY_SUBSYSTEM_REJECTED = MessageCode(
    "SECURITY_SUBSYSTEM_REJECTED",
    Level.INFO,
    "Security",
    "ContainerSSH rejected the subsystem because it does pass the security settings.",
)

SECURITY_TTY_REJECTED = MessageCode(
    "SECURITY_TTY_REJECTED",
    Level.INFO,
    "Security",
    "ContainerSSH rejected the pseudoterminal request because of the security settings.",
)

SERVICE_CRASHED = MessageCode(
    "SERVICE_CRASHED",
    Level.ERROR,
    "Service",
    "A ContainerSSH has stopped improperly.",
)

SERVICE_POOL_RUNNING = MessageCode(
    "SERVICE_POOL_RUNNING",
    Level.NOTICE,
    "Service",
    "All ContainerSSH services are now running.",
)

SERVICE_POOL_STARTING = MessageCode(
    "SERVICE_POOL_STARTING",
    Level.NOTICE,
    "Service",
    "All ContainerSSH services are starting.",
)

SERVICE_POOL_STOPPED = MessageCode(
    "SERVICE_POOL_STOPPED",
    Level.NOTICE,
    "Service",
    "ContainerSSH has stopped all services.",
)

SERVICE_POOL_STOPPING = MessageCode(
    "SERVICE_POOL_STOPPING",
    Level.NOTICE,
    "Service",
    "ContainerSSH is stopping all services.",
)

SERVICE_RUNNING = MessageCode(
    "SERVICE_RUNNING",
    Level.DEBUG,
    "Service",
    "A ContainerSSH service is now running",
)

SERVICE_STARTING = MessageCode(
    "SERVICE_STARTING",
    Level.DEBUG,
    "Service",
    "ContainerSSH is starting a component service",
)

SERVICE_STOPPED = MessageCode(
    "SERVICE_STOPPED",
    Level.DEBUG,
    "Service",
    "A ContainerSSH service has stopped.",
)

SERVICE_STOPPING = MessageCode(
    "SERVICE_STOPPING",
    Level.DEBUG,
    "Service",
    "A ContainerSSH service is now stopping.",
)

SSH_ALREADY_RUNNING = MessageCode(
    "SSH_ALREADY_RUNNING",
    Level.ERROR,
    "SSH",
    "The SSH server is already running and has been started again. This is a bug, please report it.",
)

SSH_AUTH_FAILED = MessageCode(
    "SSH_AUTH_FAILED",
    Level.INFO,
    "SSH",
    "The user has provided invalid credentials.",
)

SSH_AUTH_SUCCESSFUL = MessageCode(
    "SSH_AUTH_SUCCESSFUL",
    Level.INFO,
    "SSH",
    "The user has provided valid credentials and is now authenticated.",
)

SSH_AUTH_UNAVAILABLE = MessageCode(
    "SSH_AUTH_UNAVAILABLE",
    Level.INFO,
    "SSH",
    "The user has requested an authentication method that is currently unavailable.",
)

SSH_AVAILABLE = MessageCode(
    "SSH_AVAILABLE",
    Level.NOTICE,
    "SSH",
    "The SSH service is now online and ready for service.",
)

SSH_BACKEND_REJECTED_HANDSHAKE = MessageCode(
    "SSH_BACKEND_REJECTED_HANDSHAKE",
    Level.WARNING,
    "SSH",
    "The backend has rejected the connecting user after successful authentication.",
)

SSH_CHANNEL_REQUEST = MessageCode(
    "SSH_CHANNEL_REQUEST",
    Level.DEBUG,
    "SSH",
    "The user has send a new channel-specific request.",
)

SSH_CHANNEL_REQUEST_FAILED = MessageCode(
    "SSH_CHANNEL_REQUEST_FAILED",
    Level.WARNING,
    "SSH",
    "ContainerSSH couldn't fulfil the channel-specific request.",
)

SSH_CHANNEL_REQUEST_SUCCESSFUL = MessageCode(
    "SSH_CHANNEL_REQUEST_SUCCESSFUL",
    Level.DEBUG,
    "SSH",
    "ContainerSSH has successfully processed the channel-specific request.",
)

SSH_CONNECTED = MessageCode(
    "SSH_CONNECTED",
    Level.INFO,
    "SSH",
    "A user has connected over SSH.",
)

SSH_DECODE_FAILED = MessageCode(
    "SSH_DECODE_FAILED",
    Level.WARNING,
    "SSH",
    "ContainerSSH failed to decode something from the user. This is either a bug in ContainerSSH or in the connecting client.",
)

SSH_DISCONNECTED = MessageCode(
    "SSH_DISCONNECTED",
    Level.INFO,
    "SSH",
    "An SSH connection has been severed.",
)

SSH_EXIT = MessageCode(
    "SSH_EXIT",
    Level.DEBUG,
    "SSH",
    "ContainerSSH is sending the exit code of the program to the user.",
)

SSH_EXIT_CODE_FAILED = MessageCode(
    "SSH_EXIT_CODE_FAILED",
    Level.WARNING,
    "SSH",
    "ContainerSSH failed to obtain and send the exit code of the program to the user.",
)

SSH_EXIT_SIGNAL = MessageCode(
    "SSH_EXIT_SIGNAL",
    Level.DEBUG,
    "SSH",
    "ContainerSSH is sending the exit signal from an abnormally exited program to the user.",
)

SSH_HANDSHAKE_FAILED = MessageCode(
    "SSH_HANDSHAKE_FAILED",
    Level.INFO,
    "SSH",
    "The connecting party failed to establish a secure SSH connection. This is most likely due to invalid credentials or a backend error.",
)

SSH_HANDSHAKE_SUCCESSFUL = MessageCode(
    "SSH_HANDSHAKE_SUCCESSFUL",
    Level.INFO,
    "SSH",
    "The user has provided valid credentials and has now established an SSH connection.",
)

SSH_LISTEN_CLOSE_FAILED = MessageCode(
    "SSH_LISTEN_CLOSE_FAILED",
    Level.WARNING,
    "SSH",
    "ContainerSSH failed to close the listen socket.",
)

SSH_NEW_CHANNEL = MessageCode(
    "SSH_NEW_CHANNEL",
    Level.DEBUG,
    "SSH",
    "A user has established a new SSH channel. (Not connection!)",
)

SSH_NEW_CHANNEL_REJECTED = MessageCode(
    "SSH_NEW_CHANNEL_REJECTED",
    Level.DEBUG,
    "SSH",
    "The user has requested a new channel to be opened, but was rejected.",
)

SSH_REPLY_SEND_FAILED = MessageCode(
    "SSH_REPLY_SEND_FAILED",
    Level.WARNING,
    "SSH",
    "ContainerSSH couldn't send the reply to a request to the user. This is usually the case if the user suddenly disconnects.",
)

SSH_START_FAILED = MessageCode(
    "SSH_START_FAILED",
    Level.ERROR,
    "SSH",
    "ContainerSSH failed to start the SSH service. This is usually because of invalid configuration.",
)

SSH_UNSUPPORTED_CHANNEL_TYPE = MessageCode(
    "SSH_UNSUPPORTED_CHANNEL_TYPE",
    Level.DEBUG,
    "SSH",
    "The user requested a channel type that ContainerSSH doesn't support (e.g. TCP/IP forwarding).",
)

SSH_UNSUPPORTED_GLOBAL_REQUEST = MessageCode(
    "SSH_UNSUPPORTED_GLOBAL_REQUEST",
    Level.DEBUG,
    "SSH",
    "The users client has send a global request ContainerSSH does not support. This is nothing to worry about.",
)

CORE_CONFIG_VALID = MessageCode(
    "CORE_CONFIG_VALID",
    Level.INFO,
    "Core",
    "The configuration file was checked and is valid; nothing was started.",
    own=True,
)

CONFIG_AUTH_URL_DEPRECATED = MessageCode(
    "CONFIG_AUTH_URL_DEPRECATED",
    Level.WARNING,
    "Configuration",
    "The configuration uses the deprecated `auth.url` (or `auth.password: true` / `auth.pubkey: true`) shape; it was converted to `auth.password.webhook` / `auth.publicKey.webhook`. Update the file to the current shape.",
)

CONFIG_DEPRECATED_KEY = MessageCode(
    "CONFIG_DEPRECATED_KEY",
    Level.WARNING,
    "Configuration",
    "The configuration uses a deprecated key that is still honoured; the message names its replacement.",
    own=True,
)

SSH_KEEPALIVE_NORESP = MessageCode(
    "SSH_KEEPALIVE_NORESP",
    Level.DEBUG,
    "SSH",
    "The client did not answer a keepalive request in time; after `clientAliveCountMax` misses the connection is closed.",
)

SSH_SOCKET_REUSE_FAILED = MessageCode(
    "SSH_SOCKET_REUSE_FAILED",
    Level.WARNING,
    "SSH",
    "The SSH listen socket could not be set to reuse its address.",
)

SSH_GLOBAL_REQUEST = MessageCode(
    "SSH_GLOBAL_REQUEST",
    Level.DEBUG,
    "SSH",
    "The user has sent a global (connection-level) request.",
)

SSH_GLOBAL_REQUEST_SUCCESSFUL = MessageCode(
    "SSH_GLOBAL_REQUEST_SUCCESSFUL",
    Level.DEBUG,
    "SSH",
    "The global request was processed successfully.",
)

SSH_GLOBAL_REQUEST_FAILED = MessageCode(
    "SSH_GLOBAL_REQUEST_FAILED",
    Level.WARNING,
    "SSH",
    "The global request could not be fulfilled.",
)

SSH_HANDSHAKE_TIMEOUT = MessageCode(
    "SSH_HANDSHAKE_TIMEOUT",
    Level.INFO,
    "SSH",
    "The client did not finish authentication within the login grace time and was disconnected.",
    own=True,
)

SSH_AUTH_TOO_MANY_ATTEMPTS = MessageCode(
    "SSH_AUTH_TOO_MANY_ATTEMPTS",
    Level.INFO,
    "SSH",
    "The client exceeded the maximum number of authentication attempts and was disconnected.",
    own=True,
)

SSH_ALGORITHM_UNSUPPORTED = MessageCode(
    "SSH_ALGORITHM_UNSUPPORTED",
    Level.WARNING,
    "SSH",
    "A configured cipher, key exchange, MAC or host key algorithm is not implemented by this server and was left out of the offer.",
    own=True,
)

SSH_FORWARD_DIAL = MessageCode(
    "SSH_FORWARD_DIAL",
    Level.DEBUG,
    "SSH",
    "A direct-tcpip channel (ssh -L, ssh -D) opened: the container dials the host and port the client named, with the forwarding helper, or nc or socat.",
    own=True,
)

SSH_FORWARD_FAILED = MessageCode(
    "SSH_FORWARD_FAILED",
    Level.WARNING,
    "SSH",
    "A forwarded connection could not be dialled from the container: the dialler did not start (the container is gone, the backend refused), reported an error (its message, such as a refused connection or an image without nc or socat, is logged), or the execution mode has no container that lives as long as the connection (session mode).",
    own=True,
)

SSH_FORWARD_LISTEN = MessageCode(
    "SSH_FORWARD_LISTEN",
    Level.DEBUG,
    "SSH",
    "A remote port forwarding request (tcpip-forward: ssh -R) was granted: the forwarding helper listens on the address and port in the user's container (port 0: the one it chose, sent in the reply), or a cancel-tcpip-forward stopped it (stopped=true).",
    own=True,
)

SSH_FORWARD_ACCEPT = MessageCode(
    "SSH_FORWARD_ACCEPT",
    Level.DEBUG,
    "SSH",
    "A connection to a port the container listens on for the client (ssh -R) arrived: a forwarded-tcpip channel to the client carries it.",
    own=True,
)

SSH_FORWARD_HELPER = MessageCode(
    "SSH_FORWARD_HELPER",
    Level.DEBUG,
    "SSH",
    "The first forwarded connection of a container found how the container dials: with the forwarding helper (this project's guest image carries one; ContainerSSH's agent has forward-server), which copies in large pieces, or else with nc or socat from the image (reason says why the helper was not used). The choice holds for the container's lifetime.",
    own=True,
)

SSH_REKEY = MessageCode(
    "SSH_REKEY",
    Level.DEBUG,
    "SSH",
    "A new key exchange started on an established connection: by the server after ssh.rekeyAfterBytes bytes went one way or ssh.rekeyAfterSeconds passed under the same keys (reason volume or time), or by the client. Sessions continue across it.",
    own=True,
)

SSH_IDLE_WARNING = MessageCode(
    "SSH_IDLE_WARNING",
    Level.INFO,
    "SSH",
    "The connection had no client input and no program output for session.idleTimeout minus session.warning: the user was warned on each running program's terminal (or stderr) that the connection closes unless there is activity (secondsLeft, programs reached).",
    own=True,
)

SSH_IDLE_RESUMED = MessageCode(
    "SSH_IDLE_RESUMED",
    Level.DEBUG,
    "SSH",
    "There was activity on the connection after the idle warning: the idle timeout starts over, and the user is warned again before it is reached.",
    own=True,
)

SSH_IDLE_TIMEOUT = MessageCode(
    "SSH_IDLE_TIMEOUT",
    Level.INFO,
    "SSH",
    "The connection was idle for session.idleTimeout: every running program was sent session.signal, and the connection closes after session.grace (at once when no program runs).",
    own=True,
)

SSH_TIME_LIMIT_WARNING = MessageCode(
    "SSH_TIME_LIMIT_WARNING",
    Level.INFO,
    "SSH",
    "The connection is session.warning away from session.maxSessionDuration: the user was warned on each running program's terminal (or stderr) when it closes.",
    own=True,
)

SSH_TIME_LIMIT_REACHED = MessageCode(
    "SSH_TIME_LIMIT_REACHED",
    Level.INFO,
    "SSH",
    "The connection lasted session.maxSessionDuration: every running program was sent session.signal, and the connection closes after session.grace (at once when no program runs).",
    own=True,
)

SSH_TIMEOUT_DISCONNECT = MessageCode(
    "SSH_TIMEOUT_DISCONNECT",
    Level.INFO,
    "SSH",
    "The grace period after an idle timeout or the time limit ended: the gateway closed the connection, telling the client why (idle timeout, session time limit reached).",
    own=True,
)

SSH_PACKET_REFUSED = MessageCode(
    "SSH_PACKET_REFUSED",
    Level.WARNING,
    "SSH",
    "A packet from the client failed the transport's checks (a MAC or authentication tag that does not verify, a length over 256 KiB or not aligned to the cipher's block size, bad padding) and the connection was closed; a corrupting network path or a broken or hostile client.",
    own=True,
)

SSH_SHUTDOWN = MessageCode(
    "SSH_SHUTDOWN",
    Level.NOTICE,
    "SSH",
    "The SSH service is closing open connections because the gateway is shutting down.",
    own=True,
)

AUTH_DISABLED = MessageCode(
    "AUTH_DISABLED",
    Level.WARNING,
    "Authentication",
    "The authentication method the client tried is not enabled in the configuration.",
)

AUTHZ_FAILED = MessageCode(
    "AUTHZ_FAILED",
    Level.INFO,
    "Authentication",
    "The authorization webhook refused a user who had authenticated successfully.",
)

AUTH_STATIC_USERS_LOADED = MessageCode(
    "AUTH_STATIC_USERS_LOADED",
    Level.INFO,
    "Authentication",
    "The embedded static-user authenticator loaded its users file.",
    own=True,
)

DOCKER_PROGRAM_NOT_RUNNING = MessageCode(
    "DOCKER_PROGRAM_NOT_RUNNING",
    Level.WARNING,
    "Docker",
    "The user requested an action that needs a running program (window change, signal), but no program is running on the channel.",
)

CONTAINER_KEY_NEW = MessageCode(
    "CONTAINER_KEY_NEW",
    Level.INFO,
    "Backend",
    "A connection carries a container key (session.containerKey) that no container of this user has: its container is created as usual and kept for the user's next connections with the same key. containerKey is a digest of the key, never the key.",
    own=True,
)

CONTAINER_KEY_JOINED = MessageCode(
    "CONTAINER_KEY_JOINED",
    Level.INFO,
    "Backend",
    "A connection with a container key joined the container an earlier connection of the same user with the same key created: its programs run there with its own environment, and its files are written there (users: connections now using the container).",
    own=True,
)

CONTAINER_KEY_KEPT = MessageCode(
    "CONTAINER_KEY_KEPT",
    Level.INFO,
    "Backend",
    "The last connection using a keyed container closed: the container stays for session.keepAlive, for a next connection with the same key.",
    own=True,
)

CONTAINER_KEY_EXPIRED = MessageCode(
    "CONTAINER_KEY_EXPIRED",
    Level.INFO,
    "Backend",
    "No connection with its key came within session.keepAlive, or more than 8 unused keyed containers are kept for the user (the one unused the longest goes): the keyed container is removed.",
    own=True,
)

CONTAINER_KEY_STALE = MessageCode(
    "CONTAINER_KEY_STALE",
    Level.WARNING,
    "Backend",
    "A connection's key names a container that is no longer running (stopped, removed, the engine restarted): it is removed and a new one is made for the key.",
    own=True,
)

CONTAINER_KEY_ABSENT = MessageCode(
    "CONTAINER_KEY_ABSENT",
    Level.INFO,
    "Backend",
    "With session.containerKey.clientEnvironment the container is chosen when the connection first needs one; at that moment the client had not sent the variable (its first program came without it, or a port, X11 or agent forward needed the container before any program): the connection gets a container of its own. Also the code of a program or forward refused because the connection closed before its container was chosen.",
    own=True,
)

CONTAINER_KEY_INVALID = MessageCode(
    "CONTAINER_KEY_INVALID",
    Level.WARNING,
    "Backend",
    "The container key a connection carries is too long (over 256 characters) or not printable: it is ignored and the connection gets a container of its own.",
    own=True,
)

DOCKER_POOL_STARTED = MessageCode(
    "DOCKER_POOL_STARTED",
    Level.INFO,
    "Docker",
    "A warm pool was set up for a container template (docker.pool.size): that many containers are created and started ahead of demand (poolTemplate names the template, also the conch_container_pool label of its containers).",
    own=True,
)

DOCKER_POOL_FILL = MessageCode(
    "DOCKER_POOL_FILL",
    Level.DEBUG,
    "Docker",
    "The warm pool started creating a container to replace one a connection took, or to fill up (ready and starting counts).",
    own=True,
)

DOCKER_POOL_READY = MessageCode(
    "DOCKER_POOL_READY",
    Level.DEBUG,
    "Docker",
    "A warm pool container is created and started, with its guest agent chosen, and waits for a connection.",
    own=True,
)

DOCKER_POOL_FILL_FAILED = MessageCode(
    "DOCKER_POOL_FILL_FAILED",
    Level.WARNING,
    "Docker",
    "A warm pool container could not be created or started (reason from the engine); the pool tries again after the retry interval. Connections meanwhile create their own containers, as without a pool.",
    own=True,
)

DOCKER_POOL_HANDOVER = MessageCode(
    "DOCKER_POOL_HANDOVER",
    Level.INFO,
    "Docker",
    "A connection took a ready container from the warm pool: its environment goes to every program, its files are written, and the container is removed when the connection ends, never returned to the pool.",
    own=True,
)

DOCKER_POOL_EMPTY = MessageCode(
    "DOCKER_POOL_EMPTY",
    Level.INFO,
    "Docker",
    "A connection found no ready container in its template's warm pool (a burst larger than the pool, or a pool still filling): it creates its own, as without a pool.",
    own=True,
)

DOCKER_POOL_STALE = MessageCode(
    "DOCKER_POOL_STALE",
    Level.WARNING,
    "Docker",
    "A ready warm pool container had stopped by the time a connection took it (its idle command exited, the engine restarted, someone stopped it): it is removed and the connection takes the next one, or creates its own.",
    own=True,
)

DOCKER_POOL_DRAIN = MessageCode(
    "DOCKER_POOL_DRAIN",
    Level.INFO,
    "Docker",
    "The gateway is stopping (or a template's pool is evicted): the warm pool's containers, ready and starting, are removed.",
    own=True,
)

DOCKER_POOL_UNAVAILABLE = MessageCode(
    "DOCKER_POOL_UNAVAILABLE",
    Level.WARNING,
    "Docker",
    "docker.pool.size is set, but the configuration cannot have a warm pool (session mode, a fixed containername, or a container configuration the engine would refuse): no containers are made ahead of demand.",
    own=True,
)

DOCKER_CONTAINER_RECONCILE = MessageCode(
    "DOCKER_CONTAINER_RECONCILE",
    Level.NOTICE,
    "Docker",
    "At start-up the Docker backend found and is removing containers that a previous run of this gateway left behind.",
    own=True,
)

DOCKER_CONNECTION_FAILED = MessageCode(
    "DOCKER_CONNECTION_FAILED",
    Level.ERROR,
    "Docker",
    "The Docker backend cannot reach the Docker engine.",
    own=True,
)

DOCKER_AGENT_LOG = MessageCode(
    "DOCKER_AGENT_LOG",
    Level.WARNING,
    "Docker",
    "The guest agent wrote a diagnostic line on its standard error.",
)

SERVICE_SHUTDOWN_DEADLINE = MessageCode(
    "SERVICE_SHUTDOWN_DEADLINE",
    Level.WARNING,
    "Service",
    "The shutdown deadline expired before every session finished; the remaining ones were closed by force.",
    own=True,
)

CORE_FRAMEWORK_LOG = MessageCode(
    "CORE_FRAMEWORK_LOG",
    Level.DEBUG,
    "Core",
    "A message from the Twisted framework or a library, passed on as is; its warnings are logged at warning level, everything else at debug.",
    own=True,
)


SECURITY_FORWARDING_REJECTED = MessageCode(
    "SECURITY_FORWARDING_REJECTED",
    Level.DEBUG,
    "Security",
    "A port forwarding channel (direct-tcpip: ssh -L, ssh -D) was refused with 'administratively prohibited': security.forwarding.forwardingMode disables it (the default), or the target is in security.forwarding.deny (enable) or not in security.forwarding.allow (filter).",
    own=True,
)

SECURITY_REVERSE_FORWARDING_REJECTED = MessageCode(
    "SECURITY_REVERSE_FORWARDING_REJECTED",
    Level.DEBUG,
    "Security",
    "A remote port forwarding request (tcpip-forward: ssh -R) was answered with failure: security.forwarding.reverseForwardingMode disables it (the default), or the port is in security.forwarding.reverseDeny (enable) or not in reverseAllow (filter).",
    own=True,
)

SECURITY_SOCKET_FORWARDING_REJECTED = MessageCode(
    "SECURITY_SOCKET_FORWARDING_REJECTED",
    Level.DEBUG,
    "Security",
    "A Unix socket forwarding channel (direct-streamlocal@openssh.com: ssh -L to a socket path) was refused with 'administratively prohibited' because security.forwarding.socketForwardingMode does not enable it (the default).",
    own=True,
)

SECURITY_SOCKET_LISTEN_REJECTED = MessageCode(
    "SECURITY_SOCKET_LISTEN_REJECTED",
    Level.DEBUG,
    "Security",
    "A request to listen on a Unix socket in the container (streamlocal-forward@openssh.com: ssh -R from a socket path) was answered with failure because security.forwarding.socketListenMode does not enable it (the default).",
    own=True,
)

SECURITY_X11_REJECTED = MessageCode(
    "SECURITY_X11_REJECTED",
    Level.DEBUG,
    "Security",
    "An X11 forwarding request (x11-req: ssh -X, ssh -Y) was answered with failure because security.forwarding.x11ForwardingMode does not enable it (the default; filter refuses too).",
    own=True,
)

SECURITY_AGENT_FORWARDING_REJECTED = MessageCode(
    "SECURITY_AGENT_FORWARDING_REJECTED",
    Level.DEBUG,
    "Security",
    "An agent forwarding request (auth-agent-req@openssh.com: ssh -A) was answered with failure because security.forwarding.agentForwardingMode does not enable it (the default).",
    own=True,
)

SECURITY_MAX_FORWARDS = MessageCode(
    "SECURITY_MAX_FORWARDS",
    Level.INFO,
    "Security",
    "The connection has reached security.forwarding.maxConnections forwarded connections open at once: a new one the client opened (ssh -L, ssh -D) was refused as a resource shortage, or a new one the container accepted (ssh -R, X11, agent) was closed at once.",
    own=True,
)

SECURITY_MAX_SESSIONS = MessageCode(
    "SECURITY_MAX_SESSIONS",
    Level.INFO,
    "Security",
    "The user has reached the maximum number of concurrent sessions on this connection and a new session channel was refused.",
)

DOCKER_FILE_WRITE = MessageCode(
    "DOCKER_FILE_WRITE",
    Level.DEBUG,
    "Docker",
    "The Docker backend is writing the files returned by authentication into the container.",
)

DOCKER_FILE_WRITE_FAILED = MessageCode(
    "DOCKER_FILE_WRITE_FAILED",
    Level.WARNING,
    "Docker",
    "The Docker backend could not write a file returned by authentication into the container; the program runs without it.",
)

DOCKER_GUEST_AGENT_SELECTED = MessageCode(
    "DOCKER_GUEST_AGENT_SELECTED",
    Level.DEBUG,
    "Docker",
    "The guest agent for this container was chosen: the image's own agent at agentPath, or conch-container's POSIX shell agent, copied to agentPath before the container started or passed to /bin/sh with each command.",
    own=True,
)

DOCKER_GUEST_AGENT_INSTALL_FAILED = MessageCode(
    "DOCKER_GUEST_AGENT_INSTALL_FAILED",
    Level.WARNING,
    "Docker",
    "The image has no usable guest agent at agentPath and conch-container's own agent could not be copied there (for example, a read-only root file system); programs still get the agent through /bin/sh, but an idle command or a program that names agentPath cannot run.",
    own=True,
)


SSH_SERVICE_REQUEST_REFUSED = MessageCode(
    "SSH_SERVICE_REQUEST_REFUSED",
    Level.WARNING,
    "SSH",
    "The client requested an SSH service it may not start at that point (ssh-userauth a second time, ssh-connection without authenticating, or any service before the key exchange) and was disconnected for a protocol error; no ordinary client does this.",
    own=True,
)

SSH_AUTH_TOO_MANY_PENDING = MessageCode(
    "SSH_AUTH_TOO_MANY_PENDING",
    Level.WARNING,
    "SSH",
    "The client sent more authentication requests ahead of the answers than the server queues per connection and was disconnected; no ordinary client does this.",
    own=True,
)

AUTH_STATIC_ADDRESS_BUSY = MessageCode(
    "AUTH_STATIC_ADDRESS_BUSY",
    Level.WARNING,
    "Authentication",
    "A static-user password check was refused without checking, as a failed login, because the client's address already had the maximum number of checks in progress; many of these from one address mean a password flood (or many users behind one NAT).",
    own=True,
)

CORE_INSTANCE_ID = MessageCode(
    "CORE_INSTANCE_ID",
    Level.NOTICE,
    "Core",
    "The gateway's instance id (the conch_container_instance label on its containers) and the file that keeps it under a lock while the gateway runs; a later start that finds the lock free takes the id over and removes the containers a killed run left behind.",
    own=True,
)

CORE_INSTANCE_ID_NOT_KEPT = MessageCode(
    "CORE_INSTANCE_ID_NOT_KEPT",
    Level.WARNING,
    "Core",
    "The gateway cannot keep its instance id in its state directory (not writable, no file locking, or every slot taken) and uses a random id for this run only, so containers a killed run leaves behind are not removed at the next start; give it a writable state directory with --state-dir, or remove them by their conch_container_instance label.",
    own=True,
)

CONFIG_UNSUPPORTED_FEATURE = MessageCode(
    "CONFIG_UNSUPPORTED_FEATURE",
    Level.WARNING,
    "Configuration",
    "The configuration switches on a ContainerSSH feature this version does not implement yet but can safely run without (such as metrics or GeoIP lookups), so the gateway runs without it; features it cannot safely run without stop it at start-up with CORE_CONFIG_ERROR instead.",
    own=True,
)

CONFIG_WEBHOOK_CLEARTEXT = MessageCode(
    "CONFIG_WEBHOOK_CLEARTEXT",
    Level.WARNING,
    "Configuration",
    "A webhook the configuration uses has a plain http:// URL to a host other than this machine, so passwords and user details would cross the network unencrypted; use https://.",
    own=True,
)

CONFIG_PRIVATE_KEY_FILE_READABLE = MessageCode(
    "CONFIG_PRIVATE_KEY_FILE_READABLE",
    Level.WARNING,
    "Configuration",
    "A private key file named in the configuration (a host key in ssh.hostkeys) can be read or changed by other users of the machine, which OpenSSH's sshd refuses; make it accessible to its owner only (chmod 600).",
    own=True,
)

CONFIG_DOCKER_UNKNOWN_KEY = MessageCode(
    "CONFIG_DOCKER_UNKNOWN_KEY",
    Level.WARNING,
    "Configuration",
    "A key in the Docker container, host, network or platform settings is not a field of the Docker Engine API version the gateway knows; it is passed to the engine as it is, which ignores what it does not know, so check it for a typo.",
    own=True,
)

CORE_CONFIG_FILE_MODE_RESTRICTED = MessageCode(
    "CORE_CONFIG_FILE_MODE_RESTRICTED",
    Level.WARNING,
    "Core",
    "The configuration file could be read by other users; when the gateway added a generated private host key to it, it made the file accessible to its owner only (mode 0600).",
    own=True,
)

SSH_CHANNEL_REQUESTS_FLOOD = MessageCode(
    "SSH_CHANNEL_REQUESTS_FLOOD",
    Level.WARNING,
    "SSH",
    "The client had more channel requests awaiting an answer than the server allows per connection and was disconnected; no ordinary client does this.",
    own=True,
)

SSH_STARTUP_REFUSED = MessageCode(
    "SSH_STARTUP_REFUSED",
    Level.DEBUG,
    "SSH",
    "A new connection was closed as soon as it was accepted, before any SSH greeting, because too many connections were still authenticating: from its source network (ssh.perSourceMaxStartups), or in all (ssh.maxStartups, at random between start and full, always from full on).",
    own=True,
)

SSH_PENALTY_REFUSED = MessageCode(
    "SSH_PENALTY_REFUSED",
    Level.DEBUG,
    "SSH",
    "A new connection was closed as soon as it was accepted, before any SSH greeting, because its source network owes penalty time for earlier connections that did not log in (ssh.perSourcePenalties), or because the penalty table is full and set to deny-all.",
    own=True,
)

SSH_CONNECTIONS_REFUSED = MessageCode(
    "SSH_CONNECTIONS_REFUSED",
    Level.WARNING,
    "SSH",
    "The server is refusing new connections at accept because of ssh.maxStartups, ssh.perSourceMaxStartups or ssh.perSourcePenalties; logged at the first refusal, then at most once a minute with the counts while refusals go on (each refusal is logged at debug level as SSH_STARTUP_REFUSED or SSH_PENALTY_REFUSED).",
    own=True,
)

SSH_PENALTY_ACTIVATED = MessageCode(
    "SSH_PENALTY_ACTIVATED",
    Level.INFO,
    "SSH",
    "A source network now owes more penalty time than ssh.perSourcePenalties.min for connections that failed to log in, and its new connections are refused until the penalty has run out.",
    own=True,
)

SSH_PENALTY_TABLE_FULL = MessageCode(
    "SSH_PENALTY_TABLE_FULL",
    Level.WARNING,
    "SSH",
    "The table of penalised source networks reached ssh.perSourcePenalties.maxSources: with overflow permissive the penalties closest to expiry are forgotten early, with deny-all every new connection that is not exempt is refused until a penalty expires.",
    own=True,
)

SSH_CHANNEL_LIMIT = MessageCode(
    "SSH_CHANNEL_LIMIT",
    Level.WARNING,
    "SSH",
    "The client asked for a new channel while it already had as many open as ssh.maxChannels allows; the channel was refused with OPEN_RESOURCE_SHORTAGE.",
    own=True,
)

SSH_ENV_LIMIT = MessageCode(
    "SSH_ENV_LIMIT",
    Level.WARNING,
    "SSH",
    "An env request would have taken a session channel past ssh.maxEnvVariables variables or ssh.maxEnvSize bytes; the request was answered with failure.",
    own=True,
)

SSH_WINDOW_CLAMPED = MessageCode(
    "SSH_WINDOW_CLAMPED",
    Level.DEBUG,
    "SSH",
    "The client announced a larger window or packet size for a new channel than ssh.maxWindowSize or ssh.maxPacketSize; the server uses only up to those sizes.",
    own=True,
)

SSH_WINDOW_OVERFLOW = MessageCode(
    "SSH_WINDOW_OVERFLOW",
    Level.WARNING,
    "SSH",
    "The client added so much to a channel window that it would exceed 2^32-1 bytes, which RFC 4254 forbids; the client was disconnected with a protocol error.",
    own=True,
)

TEST_WEBHOOK_ANSWERED = MessageCode(
    "TEST_WEBHOOK_ANSWERED",
    Level.DEBUG,
    "Configuration",
    "The test webhook server (conch-container test-webhook-server) answered an authentication, authorization or configuration request; the fields name the endpoint, the user and whether it succeeded.",
    own=True,
)

TEST_WEBHOOK_BAD_REQUEST = MessageCode(
    "TEST_WEBHOOK_BAD_REQUEST",
    Level.WARNING,
    "Configuration",
    "The test webhook server received a request that is not a webhook request it knows (wrong path or method, a body that is not the documented JSON, or too large) and answered it with an HTTP error.",
    own=True,
)

TEST_WEBHOOK_FAILED = MessageCode(
    "TEST_WEBHOOK_FAILED",
    Level.ERROR,
    "Configuration",
    "The test webhook server failed to answer a request because of a bug; it answered with status 500.",
    own=True,
)

TEST_WEBHOOK_STOPPED = MessageCode(
    "TEST_WEBHOOK_STOPPED",
    Level.INFO,
    "Configuration",
    "The test webhook server stopped listening and is exiting.",
    own=True,
)

KUBEAPI_LISTENING = MessageCode(
    "KUBEAPI_LISTENING",
    Level.INFO,
    "Kubernetes",
    "The test Kubernetes API server (python -m conch_container.testing.kubeapi, a test tool that runs pods as local Docker containers) is listening; the field names its URL.",
    own=True,
)

KUBEAPI_REQUEST_REFUSED = MessageCode(
    "KUBEAPI_REQUEST_REFUSED",
    Level.DEBUG,
    "Kubernetes",
    "The test Kubernetes API server refused a request with an error Status (no or a wrong token, an unknown pod, an invalid pod spec, an unsupported call), as a real API server would.",
    own=True,
)

KUBEAPI_POD_CHANGED = MessageCode(
    "KUBEAPI_POD_CHANGED",
    Level.DEBUG,
    "Kubernetes",
    "A pod of the test Kubernetes API server changed phase (created, running, ended, deleted); the fields name the pod and its phase.",
    own=True,
)

KUBEAPI_ENGINE_FAILED = MessageCode(
    "KUBEAPI_ENGINE_FAILED",
    Level.WARNING,
    "Kubernetes",
    "The test Kubernetes API server could not create, start, inspect, stop or remove a pod's Docker container, or open an exec or attach stream to it; the pod or the stream reports the failure to its client.",
    own=True,
)

KUBEAPI_FAILED = MessageCode(
    "KUBEAPI_FAILED",
    Level.ERROR,
    "Kubernetes",
    "The test Kubernetes API server failed to answer a request because of a bug; it answered with status 500.",
    own=True,
)

KUBEAPI_STOPPED = MessageCode(
    "KUBEAPI_STOPPED",
    Level.INFO,
    "Kubernetes",
    "The test Kubernetes API server stopped listening and removed the Docker containers of its pods.",
    own=True,
)

HTTP_LISTEN_FAILED = MessageCode(
    "HTTP_LISTEN_FAILED",
    Level.ERROR,
    "HTTP",
    "An HTTP service (health, metrics, the test webhook server) cannot listen on its configured address, usually because another program uses the port or the address is not on this machine; the gateway (or the test webhook server) stops.",
    own=True,
)

HTTP_SERVER_HANDLER_FAILED = MessageCode(
    "HTTP_SERVER_HANDLER_FAILED",
    Level.ERROR,
    "HTTP",
    "An HTTP service failed to answer a request because of an unexpected error; the client got status 500 without any detail. This is a bug, please report it.",
    own=True,
)

HTTP_SERVER_LIMIT = MessageCode(
    "HTTP_SERVER_LIMIT",
    Level.DEBUG,
    "HTTP",
    "An HTTP service refused a request whose body was larger than it accepts (status 413), or closed a new connection because it already had as many open as it allows.",
    own=True,
)

HEALTH_AVAILABLE = MessageCode(
    "HEALTH_AVAILABLE",
    Level.NOTICE,
    "Health",
    "The health endpoint is now online and answers ok while every service of the gateway runs.",
    own=True,
)

CORE_HEALTH_CHECK_SUCCESSFUL = MessageCode(
    "CORE_HEALTH_CHECK_SUCCESSFUL",
    Level.INFO,
    "Core",
    "The health-check command asked the gateway's health endpoint and got status 200: every service is running.",
    own=True,
)

CORE_HEALTH_CHECK_FAILED = MessageCode(
    "CORE_HEALTH_CHECK_FAILED",
    Level.ERROR,
    "Core",
    "The health-check command did not get status 200 from the gateway's health endpoint (a service is not running, the endpoint did not answer in time, or health.enable is false); it exits non-zero.",
    own=True,
)

METRICS_SCRAPE_FAILED = MessageCode(
    "METRICS_SCRAPE_FAILED",
    Level.ERROR,
    "Metrics",
    "Encoding the metrics for a scrape failed; the scraper got status 500. This is a bug and should be reported.",
    own=True,
)

KUBERNETES_IMAGE_PULL_FAILED = MessageCode(
    "KUBERNETES_IMAGE_PULL_FAILED",
    Level.ERROR,
    "Kubernetes",
    "The cluster cannot pull the image of the pod's container (ErrImagePull, ImagePullBackOff or InvalidImageName): the wait for the pod ends at once instead of at the podStart timeout; check the image name and the pod's image pull secrets.",
    own=True,
)

KUBERNETES_POD_LIST_FAILED = MessageCode(
    "KUBERNETES_POD_LIST_FAILED",
    Level.ERROR,
    "Kubernetes",
    "Listing the pods that carry a label (the gateway's own pods) failed; the message says why.",
    own=True,
)

KUBERNETES_EXEC_FAILED = MessageCode(
    "KUBERNETES_EXEC_FAILED",
    Level.ERROR,
    "Kubernetes",
    "An exec or attach stream to a pod could not be opened (the API server refused the WebSocket upgrade, offered no v5.channel.k8s.io or v4.channel.k8s.io protocol, or did not answer in time) or failed while open.",
    own=True,
)

KUBERNETES_USERNAME_TOO_LONG = MessageCode(
    "KUBERNETES_USERNAME_TOO_LONG",
    Level.WARNING,
    "Kubernetes",
    "The authenticated username, made label-safe, is longer than the 63 characters a Kubernetes label value may have: the pod is created without the containerssh_username label.",
    own=True,
)

KUBERNETES_POD_LOOKUP = MessageCode(
    "KUBERNETES_POD_LOOKUP",
    Level.DEBUG,
    "Kubernetes",
    "In persistent mode, the gateway is looking up the pod named by kubernetes.pod.metadata.name for a new connection.",
    own=True,
)

KUBERNETES_POD_LOOKUP_FAILED = MessageCode(
    "KUBERNETES_POD_LOOKUP_FAILED",
    Level.ERROR,
    "Kubernetes",
    "In persistent mode, the named pod could not be read (no answer, refused, or a server error); the read is tried 3 times, 2 seconds apart, before the connection is refused.",
    own=True,
)

KUBERNETES_POD_NOT_FOUND = MessageCode(
    "KUBERNETES_POD_NOT_FOUND",
    Level.ERROR,
    "Kubernetes",
    "In persistent mode, the pod named by kubernetes.pod.metadata.name does not exist and createMissingPods is false: the connection is refused. Create the pod, or set createMissingPods.",
    own=True,
)

KUBERNETES_POD_CREATE_RACE = MessageCode(
    "KUBERNETES_POD_CREATE_RACE",
    Level.INFO,
    "Kubernetes",
    "In persistent mode, another connection created the missing pod at the same time (the API server answered AlreadyExists): this connection uses that pod.",
    own=True,
)

KUBERNETES_POD_KEPT = MessageCode(
    "KUBERNETES_POD_KEPT",
    Level.DEBUG,
    "Kubernetes",
    "In persistent mode, a connection has ended: its programs were ended and its pod is left running for the next connection; the gateway never deletes a persistent pod.",
    own=True,
)

KUBERNETES_GUEST_AGENT_SELECTED = MessageCode(
    "KUBERNETES_GUEST_AGENT_SELECTED",
    Level.DEBUG,
    "Kubernetes",
    "The guest agent for this pod was chosen: the image's own agent at agentPath when the gateway started the pod with an idle command that runs it (so it is there, as on ContainerSSH's guest image), or else conch-container's POSIX shell agent passed to /bin/sh with each command.",
    own=True,
)

BACKEND_STARTING = MessageCode(
    "BACKEND_STARTING",
    Level.INFO,
    "Backend",
    "The configuration server chose a backend other than the static configuration's for a connection, and it is the first connection to use it: the backend is started now (with its clean-up of what a killed run of this gateway left behind), once, for this and later connections.",
    own=True,
)

BACKEND_STOP_FAILED = MessageCode(
    "BACKEND_STOP_FAILED",
    Level.WARNING,
    "Backend",
    "Stopping one of the backends at shutdown failed; the other backends are still stopped. See the error message for details.",
    own=True,
)

CATALOGUE: dict[str, MessageCode] = {
    m.code: m for m in globals().values() if isinstance(m, MessageCode)
}
