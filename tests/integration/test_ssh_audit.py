"""ssh-audit against the gateway: what it finds in the default offer and in ContainerSSH's.

ssh-audit (PyPI) connects to the gateway as a client would, reads its
KEXINIT, completes a key exchange with every host key algorithm offered,
and rates each algorithm ``fail``, ``warn`` or ``info``. Its JSON report is
compared with the tables of ``docs/algorithms.md``, so the page says what
ssh-audit says, not what someone typed: the default offer has no ``fail``
and only the warnings the page names, and ContainerSSH 0.4's default lists
produce the failures and warnings the page names for them.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

from twisted.internet.utils import getProcessOutputAndValue

from conch_container.config.ssh import CONTAINERSSH_CIPHERS, CONTAINERSSH_KEX, CONTAINERSSH_MACS
from tests.config.material import rsa_pem
from tests.integration.gateway import GatewayTestCase

DOCS = Path(__file__).resolve().parents[2] / "docs" / "algorithms.md"

#: ssh-audit's categories, as its JSON names them, and as the tables name them.
CATEGORIES = ("kex", "key", "enc", "mac")

#: A finding: (category, algorithm, level); level is ``fail`` or ``warn``.
Finding = tuple[str, str, str]


def documented_findings(table: str) -> set[Finding]:
    """The findings of one table of ``docs/algorithms.md``.

    A table sits between ``<!-- ssh-audit: NAME -->`` and ``<!-- /ssh-audit -->``;
    its rows are ``| category | `algorithm` | levels | why |``, levels
    separated by commas.
    """
    text = DOCS.read_text(encoding="utf-8")
    start = text.index(f"<!-- ssh-audit: {table} -->")
    end = text.index("<!-- /ssh-audit -->", start)
    findings: set[Finding] = set()
    for line in text[start:end].splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) < 3 or cells[0] not in CATEGORIES:
            continue
        algorithm = cells[1].strip("`")
        for level in cells[2].split(","):
            findings.add((cells[0], algorithm, level.strip()))
    return findings


def reported_findings(report: dict[str, Any]) -> set[Finding]:
    """Every ``fail`` and ``warn`` in an ssh-audit JSON report."""
    return {
        (category, entry["algorithm"], level)
        for category in CATEGORIES
        for entry in report.get(category, [])
        for level in ("fail", "warn")
        if entry.get("notes", {}).get(level)
    }


def offered(report: dict[str, Any], category: str) -> list[str]:
    return [entry["algorithm"] for entry in report.get(category, [])]


class SSHAuditCase(GatewayTestCase):
    """A gateway and one ssh-audit run against it."""

    async def audit(self) -> dict[str, Any]:
        """Run ssh-audit against the gateway and return its JSON report.

        Its exit status says the worst level found (0 none, 2 warn, 3 fail);
        anything else means it could not audit. The rate test (many
        connections at once, for the DHEat attack on Diffie-Hellman) is
        skipped: no Diffie-Hellman method is offered here, and the
        pre-authentication limits would answer it, not the algorithms.
        """
        argv = ["-m", "ssh_audit", "-j", "--skip-rate-test", "-t", "30"]
        argv += ["-p", str(self.port), "127.0.0.1"]
        out, err, code = await getProcessOutputAndValue(sys.executable, argv, env=dict(os.environ))
        self.assertIn(code, (0, 2, 3), err.decode(errors="replace") or out[-2000:])
        report: dict[str, Any] = json.loads(out)
        self.assertEqual(report["target"], f"127.0.0.1:{self.port}")
        return report

    def assert_terrapin_closed(self, report: dict[str, Any]) -> None:
        """Strict key exchange is announced, so no algorithm is flagged for Terrapin."""
        self.assertIn("kex-strict-s-v00@openssh.com", offered(report, "kex"))
        self.assertEqual(report["cves"], [])
        for category in CATEGORIES:
            for entry in report[category]:
                for notes in entry.get("notes", {}).values():
                    self.assertFalse(
                        [n for n in notes if "CVE-2023-48795" in n and "vulnerable" in n],
                        entry["algorithm"],
                    )


class DefaultOfferTests(SSHAuditCase):
    """The default configuration: ``ssh`` names only the listening address.

    No host key is configured either, so the gateway generates one and
    writes it into the configuration file, as on a first start.
    """

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["ssh"] = {"listen": "127.0.0.1:0"}
        return data

    async def test_no_failure(self) -> None:
        """No algorithm fails; the warnings are those the page names; Terrapin is closed."""
        report = await self.audit()
        findings = reported_findings(report)
        self.assertEqual({f for f in findings if f[2] == "fail"}, set())
        self.assertEqual(findings, documented_findings("default"))
        self.assertEqual(offered(report, "key"), ["ssh-ed25519"])
        self.assertEqual(
            offered(report, "mac"),
            ["hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"],
        )
        self.assertEqual(report["recommendations"], {})
        self.assert_terrapin_closed(report)


class ContainerSSHOfferTests(SSHAuditCase):
    """ContainerSSH 0.4's default lists and host key, with ``ssh-rsa`` signatures as it had."""

    def config_data(self) -> dict[str, Any]:
        data = super().config_data()
        data["ssh"] = {
            "listen": "127.0.0.1:0",
            "ciphers": list(CONTAINERSSH_CIPHERS),
            "kex": list(CONTAINERSSH_KEX),
            "macs": list(CONTAINERSSH_MACS),
            # What ContainerSSH generates when it has no host key.
            "hostkeys": [rsa_pem(4096)],
            "hostKeyAlgorithms": ["rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"],
        }
        return data

    async def test_findings_are_documented(self) -> None:
        """The failures and warnings are exactly those the page names for ContainerSSH."""
        report = await self.audit()
        self.assertEqual(reported_findings(report), documented_findings("containerssh"))
        self.assertEqual(offered(report, "kex")[:4], list(CONTAINERSSH_KEX))
        self.assertEqual(offered(report, "mac"), list(CONTAINERSSH_MACS))
        self.assertNotIn("SSH_ALGORITHM_UNSUPPORTED", self.logged_codes())
        self.assert_terrapin_closed(report)
