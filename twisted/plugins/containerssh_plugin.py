from twisted.application.service import ServiceMaker

containerssh = ServiceMaker(
    "conch-container",
    "conch_container.tap",
    "SSH gateway that puts every user into a fresh container (ContainerSSH-compatible).",
    "containerssh",
)
