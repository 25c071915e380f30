"""The test of the container test: a copy of the compose file whose beat command cannot start
makes the healthy-wait fail with a message naming the service."""
from __future__ import annotations

import secrets

import pytest

from tests.containers.stack import Stack, StackError, write_env
from tests.containers.test_stack import bring_up, stack_env

pytestmark = [pytest.mark.containers, pytest.mark.timeout(1500)]


def test_a_broken_service_command_fails_naming_the_service(images):
    text = (images / "docker-compose.yml").read_text()
    broken = text.replace("command: celery -A tasks beat --loglevel=INFO",
                          "command: celery -A tasks beat --no-such-option")
    assert broken != text
    (images / "docker-compose.broken.yml").write_text(broken)
    write_env(images, stack_env())
    stack = Stack(images, f"bkbroken{secrets.token_hex(3)}", compose_file="docker-compose.broken.yml")
    try:
        with pytest.raises(StackError, match=r"service 'beat'") as failure:
            bring_up(stack, ["beat"])
        assert "no-such-option" in str(failure.value)  # its log says why
    finally:
        stack.down()
    assert not stack.leftovers()
