"""The contract every channel adapter keeps, run against each channel's sandbox (see "Errors
and retries" in docs/architecture.md).

Real HTTP, no mocks: the sandbox is the fake, its fault injection makes the failures. Receipts
with `complete=False` (channels that finish asynchronously) are polled with `lookup` until
complete, as the delivery engine does.
"""

from __future__ import annotations

import time
from dataclasses import replace

import pytest

from channels.base import Capability, Publication, Receipt, Remote
from channels.errors import ChannelError, OutcomeUnknown, Permanent, Retryable
from tests.contract.harnesses import ContractHarness

SETTLE_SECONDS = 15.0


def remote_of(receipt: Receipt, earlier: Remote | None = None) -> Remote:
    """What the engine records of a receipt: its state merged into what it had."""
    state = {**(earlier.state if earlier else {}), **receipt.state}
    return Remote(receipt.remote_id, receipt.url, state)


def settle(h: ContractHarness, pub: Publication, receipt: Receipt) -> Receipt:
    """Poll `lookup` until the receipt is complete (bounded), like the engine does."""
    deadline = time.monotonic() + SETTLE_SECONDS
    remote = remote_of(receipt)
    while not receipt.complete:
        assert time.monotonic() < deadline, f"{h.kind}: still incomplete after {SETTLE_SECONDS}s"
        time.sleep(min(receipt.poll_after or 0.2, 1.0))
        found = h.channel.lookup(pub, remote)
        assert found is not None, f"{h.kind}: an accepted write vanished while completing"
        receipt, remote = found, remote_of(found, remote)
    return receipt


def lookup_settled(h: ContractHarness, pub: Publication, remote: Remote | None) -> Receipt | None:
    found = h.channel.lookup(pub, remote)
    return None if found is None else settle(h, pub, found)


def published(h: ContractHarness, pub: Publication) -> Receipt:
    return settle(h, pub, h.channel.create(pub))


def test_create_makes_one_live_copy_that_lookup_finds(harness: ContractHarness) -> None:
    pub = harness.publication(content_hash="a" * 64)

    receipt = published(harness, pub)

    assert receipt.remote_id
    assert receipt.url and receipt.url.startswith("http")
    assert harness.copies(pub) == 1
    found = lookup_settled(harness, pub, remote_of(receipt))
    assert found is not None
    assert found.remote_id == receipt.remote_id
    assert found.content_hash == pub.content_hash


def test_update_replaces_the_copy(harness: ContractHarness) -> None:
    if Capability.UPDATE not in harness.channel.capabilities:
        pytest.skip(f"{harness.kind} cannot update in place: its policy is tested in its own file")
    pub = harness.publication(content_hash="a" * 64)
    first = published(harness, pub)
    revised = replace(pub, revision_number=2, title=pub.title + "（更正）", content_hash="b" * 64)

    second = settle(harness, revised, harness.channel.update(revised, remote_of(first)))

    found = lookup_settled(harness, revised, remote_of(second))
    assert found is not None
    assert found.content_hash == revised.content_hash
    assert harness.copies(revised) == 1


def test_delete_withdraws_and_twice_is_not_an_error(harness: ContractHarness) -> None:
    pub = harness.publication()
    remote = remote_of(published(harness, pub))

    harness.channel.delete(remote)

    assert harness.channel.lookup(pub, remote) is None
    assert harness.copies(pub) == 0
    harness.channel.delete(remote)  # already gone: still success


def test_refused_publication_is_permanent_with_the_channels_message(
    harness: ContractHarness,
) -> None:
    bad = harness.refused(harness.publication())

    with pytest.raises(Permanent) as refused:
        harness.channel.create(bad)

    assert refused.value.code is not None
    assert harness.refusal_text in (refused.value.message or "")
    assert harness.copies(bad) == 0


def test_busy_channel_is_retryable_and_the_next_call_succeeds(harness: ContractHarness) -> None:
    pub = harness.publication()
    harness.sandbox.faults(fail_next=1)

    with pytest.raises(Retryable):
        harness.channel.create(pub)

    published(harness, pub)
    assert harness.copies(pub) == 1


def test_timeout_after_write_is_unknown_and_lookup_finds_one_copy(
    harness: ContractHarness,
) -> None:
    pub = harness.publication()
    harness.sandbox.faults(timeout_next_writes=1, hang_seconds=2)

    with pytest.raises(OutcomeUnknown):
        harness.channel.create(pub)

    found = lookup_settled(harness, pub, None)
    assert found is not None, "the write took effect, lookup must find it"
    assert harness.copies(pub) == 1


def test_garbage_answer_is_a_channel_error_keeping_the_text(harness: ContractHarness) -> None:
    pub = harness.publication()
    harness.sandbox.faults(garbage_next=1)

    with pytest.raises(ChannelError) as garbled:
        harness.channel.create(pub)

    assert "<" in (garbled.value.message or ""), "the channel's raw answer is kept"
    published(harness, pub)
    assert harness.copies(pub) == 1


def test_garbage_answer_to_a_lookup_is_a_channel_error(harness: ContractHarness) -> None:
    pub = harness.publication()
    remote = remote_of(published(harness, pub))
    harness.sandbox.faults(garbage_next=1)

    with pytest.raises(ChannelError):
        harness.channel.lookup(pub, remote)

    assert lookup_settled(harness, pub, remote) is not None
