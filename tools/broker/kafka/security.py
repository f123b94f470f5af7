"""A broker listener with SASL/SCRAM-SHA-512 over TLS, StandardAuthorizer ACLs and SCRAM users.

The harness's own ``PLAINTEXT`` and ``CONTROLLER`` listeners stay unauthenticated; their
principal (``User:ANONYMOUS``) is made a super user so the harness, inter-broker replication
and the test's admin steps keep working. Every other client connects to the ``SECURE``
listener with a SCRAM user and gets exactly the ACLs granted here — nothing by default
(``allow.everyone.if.no.acl.found=false``).

    pki = make_test_pki(tmp / "pki")
    with KafkaBroker(extra_listeners=[secure_listener()], overrides=secure_overrides(pki)) as broker:
        add_scram_user(broker.bootstrap_servers, "fraud", password)
        grant(broker.bootstrap_servers, service_acls("fraud", "payments.transactions", ...))
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from confluent_kafka import KafkaException

# the submodules: confluent_kafka.admin re-exports these without declaring them for mypy
from confluent_kafka.admin._acl import AclBinding, AclBindingFilter, AclOperation, AclPermissionType
from confluent_kafka.admin._resource import ResourcePatternType, ResourceType
from confluent_kafka.admin._scram import ScramCredentialInfo, ScramMechanism, UserScramCredentialUpsertion

from tools.broker.errors import HarnessError
from tools.broker.kafka.admin import admin_client
from tools.broker.kafka.config import ListenerSpec
from tools.broker.tls import GeneratedPki

logger = logging.getLogger(__name__)

SECURE_LISTENER = "SECURE"
SCRAM_ITERATIONS = 4096


def secure_listener(port: int = 0) -> ListenerSpec:
    return ListenerSpec(SECURE_LISTENER, port, "SASL_SSL")


def secure_overrides(pki: GeneratedPki) -> dict[str, str]:
    """server.properties entries for the ``SECURE`` listener, SCRAM and the StandardAuthorizer."""
    prefix = f"listener.name.{SECURE_LISTENER.lower()}"
    return {
        "sasl.enabled.mechanisms": "SCRAM-SHA-512",
        f"{prefix}.scram-sha-512.sasl.jaas.config": "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        f"{prefix}.ssl.keystore.type": "PKCS12",
        f"{prefix}.ssl.keystore.location": str(pki.broker_keystore_p12),
        f"{prefix}.ssl.keystore.password": pki.keystore_password,
        f"{prefix}.ssl.key.password": pki.keystore_password,
        "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
        "super.users": "User:ANONYMOUS",
        "allow.everyone.if.no.acl.found": "false",
    }


def add_scram_user(bootstrap: str, user: str, password: str, timeout: float = 30.0) -> None:
    """Create or replace ``user``'s SCRAM-SHA-512 credential (through the admin listener)."""
    admin = admin_client(bootstrap)
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    futures = admin.alter_user_scram_credentials([UserScramCredentialUpsertion(user, info, password.encode())])
    for name, future in futures.items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            # the message names the user only: the password must never reach an exception
            raise HarnessError(f"cannot create SCRAM user {name!r}: {exc.args[0].name()}") from None


@dataclass(frozen=True)
class ServiceAccess:
    """What one service may touch: read its input (and changelog) as its group, write its outputs."""

    user: str
    group: str
    reads: Sequence[str]
    writes: Sequence[str]


def _allow(restype: ResourceType, name: str, principal: str, op: AclOperation) -> AclBinding:
    return AclBinding(restype, name, ResourcePatternType.LITERAL, principal, "*", op, AclPermissionType.ALLOW)


def service_acls(access: ServiceAccess, exactly_once: bool = False) -> list[AclBinding]:
    """The least privilege a runtime service needs (no topic creation). Exactly-once adds its
    transactional ids, ``<group>.<instance>``: WRITE and DESCRIBE on the ``<group>.`` prefix."""
    principal = f"User:{access.user}"
    bindings = [_allow(ResourceType.GROUP, access.group, principal, AclOperation.READ)]
    if exactly_once:
        bindings += [AclBinding(ResourceType.TRANSACTIONAL_ID, f"{access.group}.", ResourcePatternType.PREFIXED,
                                principal, "*", op, AclPermissionType.ALLOW)
                     for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    for topic in access.reads:
        bindings += [_allow(ResourceType.TOPIC, topic, principal, op)
                     for op in (AclOperation.READ, AclOperation.DESCRIBE)]
    for topic in access.writes:
        bindings += [_allow(ResourceType.TOPIC, topic, principal, op)
                     for op in (AclOperation.WRITE, AclOperation.DESCRIBE)]
    return bindings


def grant(bootstrap: str, bindings: Iterable[AclBinding], timeout: float = 30.0) -> None:
    admin = admin_client(bootstrap)
    for binding, future in admin.create_acls(list(bindings), request_timeout=timeout).items():
        try:
            future.result(timeout)
        except KafkaException as exc:
            raise HarnessError(f"cannot create ACL {binding}: {exc}") from exc


def revoke(bootstrap: str, bindings: Iterable[AclBinding], timeout: float = 30.0) -> int:
    """Delete exactly these ACLs; returns how many were deleted."""
    filters = [AclBindingFilter(b.restype, b.name, b.resource_pattern_type, b.principal, b.host, b.operation,
                                b.permission_type) for b in bindings]
    admin = admin_client(bootstrap)
    deleted = 0
    for _, future in admin.delete_acls(filters, request_timeout=timeout).items():
        deleted += len(future.result(timeout))
    return deleted
