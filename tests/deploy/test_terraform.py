"""The Terraform module: parsed with python-hcl2, and planned and applied by terraform itself against a mock AWS.

``terraform test`` with ``mock_provider "aws"`` evaluates the real module (variables and their
validation, templatefile(), the resources' arguments, the outputs) without credentials or network.
The hashicorp/aws provider comes from a local plugin directory (TF_PLUGIN_DIR, default
/opt/tf-plugins), so ``terraform init`` downloads nothing; CHECKPOINT_DISABLE stops the version check.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.helpers import (
    TERRAFORM,
    assert_ok,
    blocks,
    hcl,
    require_tool,
    run,
    terraform_resources,
    terraform_variables,
)

VARIABLES = {
    "allowed_cidr": "203.0.113.7/32",
    "ssh_cidr": "198.51.100.0/24",
    "repo_url": "https://example.com/mlops.git",
    "repo_branch": "release/1.2",
}
PUBLIC_IP = "203.0.113.10"

# One run block per concern; the Python tests below each check the runs they are about.
TFTEST = """
mock_provider "aws" {
  override_resource {
    target = aws_instance.mlops
    values = { public_ip = "%(public_ip)s" }
  }
}

variables {
  allowed_cidr = "%(allowed_cidr)s"
  ssh_cidr     = "%(ssh_cidr)s"
  repo_url     = "%(repo_url)s"
  repo_branch  = "%(repo_branch)s"
}

run "security_group" {
  assert {
    condition     = toset([for r in aws_security_group.mlops.ingress : r.from_port]) == toset([22, 5000, 8501, 9090])
    error_message = "ingress ports: ${jsonencode([for r in aws_security_group.mlops.ingress : r.from_port])}"
  }
  assert {
    condition = alltrue([for r in aws_security_group.mlops.ingress :
    r.to_port == r.from_port && r.protocol == "tcp"])
    error_message = "every ingress rule is one TCP port"
  }
  assert {
    condition = alltrue([for r in aws_security_group.mlops.ingress :
    tolist(r.cidr_blocks) == tolist(r.from_port == 22 ? [var.ssh_cidr] : [var.allowed_cidr])])
    error_message = "ingress CIDRs: ${jsonencode(aws_security_group.mlops.ingress)}"
  }
  assert {
    condition = length(aws_security_group.mlops.egress) == 1 && alltrue([for r in aws_security_group.mlops.egress :
    r.protocol == "-1" && tolist(r.cidr_blocks) == tolist(["0.0.0.0/0"])])
    error_message = "egress: ${jsonencode(aws_security_group.mlops.egress)}"
  }
  assert {
    condition     = aws_instance.mlops.vpc_security_group_ids == toset([aws_security_group.mlops.id])
    error_message = "the instance is in the security group"
  }
}

run "instance" {
  assert {
    condition     = aws_instance.mlops.metadata_options[0].http_tokens == "required"
    error_message = "IMDSv2 must be required"
  }
  assert {
    condition     = aws_instance.mlops.root_block_device[0].volume_size == 20
    error_message = "root volume: ${aws_instance.mlops.root_block_device[0].volume_size} GiB"
  }
  assert {
    condition = (aws_instance.mlops.root_block_device[0].volume_type == "gp3"
    && aws_instance.mlops.root_block_device[0].encrypted)
    error_message = "the root volume is encrypted gp3"
  }
  assert {
    condition     = aws_instance.mlops.instance_type == "t3.medium"
    error_message = "default instance type: ${aws_instance.mlops.instance_type}"
  }
  assert {
    condition     = aws_instance.mlops.ami == data.aws_ami.al2023.id && data.aws_ami.al2023.most_recent
    error_message = "the instance boots the most recent AMI the data source finds"
  }
  assert {
    condition = startswith(one(one([for f in data.aws_ami.al2023.filter :
    f.values if f.name == "name"])), "al2023-ami-")
    error_message = "Amazon Linux 2023 AMI"
  }
}

run "user_data" {
  assert {
    # templatefile() changes nothing but the two placeholders: no other template expression or directive.
    condition = aws_instance.mlops.user_data == replace(replace(file("user_data.sh"),
    "$${repo_url}", var.repo_url), "$${repo_branch}", var.repo_branch)
    error_message = "rendered user data:\\n${aws_instance.mlops.user_data}"
  }
  assert {
    condition     = aws_instance.mlops.user_data_replace_on_change
    error_message = "a changed bootstrap script must replace the instance"
  }
}

run "outputs" {
  assert {
    condition = (output.public_ip == "%(public_ip)s" && output.api_url == "http://%(public_ip)s:5000"
    && output.streamlit_url == "http://%(public_ip)s:8501" && output.prometheus_url == "http://%(public_ip)s:9090")
    error_message = "outputs: ${jsonencode([output.api_url, output.streamlit_url, output.prometheus_url])}"
  }
  assert {
    condition     = output.ssh_command == "no key_name set: SSH login disabled"
    error_message = "ssh_command without a key pair: ${output.ssh_command}"
  }
}

run "outputs_with_key" {
  variables {
    key_name = "demo-key"
  }
  assert {
    condition     = output.ssh_command == "ssh -i <path-to-demo-key.pem> ec2-user@%(public_ip)s"
    error_message = "ssh_command: ${output.ssh_command}"
  }
}

run "ssh_open_to_the_world" {
  command = plan
  variables {
    ssh_cidr = "0.0.0.0/0"
  }
  expect_failures = [var.ssh_cidr]
}

run "ssh_cidr_not_a_cidr" {
  command = plan
  variables {
    ssh_cidr = "my-laptop"
  }
  expect_failures = [var.ssh_cidr]
}

run "allowed_cidr_not_a_cidr" {
  command = plan
  variables {
    allowed_cidr = "everyone"
  }
  expect_failures = [var.allowed_cidr]
}

run "repo_url_with_a_quote" {
  command = plan
  variables {
    repo_url = "https://example.com/x.git'; touch /tmp/pwned; '"
  }
  expect_failures = [var.repo_url]
}

run "repo_url_not_a_git_url" {
  command = plan
  variables {
    repo_url = "ftp://example.com/x.git"
  }
  expect_failures = [var.repo_url]
}

run "repo_branch_with_a_space" {
  command = plan
  variables {
    repo_branch = "main && reboot"
  }
  expect_failures = [var.repo_branch]
}
"""


def terraform_env(tmp: Path) -> dict[str, str]:
    """terraform with an empty CLI config, no version check and no prompts."""
    config = tmp / "terraformrc"
    config.write_text("", encoding="utf-8")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("TF_")},
        "TF_CLI_CONFIG_FILE": str(config),
        "TF_IN_AUTOMATION": "1",
        "TF_INPUT": "0",
        "CHECKPOINT_DISABLE": "1",
    }


@pytest.fixture(scope="module")
def terraform_module(tmp_path_factory) -> tuple[str, Path, dict[str, str]]:
    """A copy of terraform/ initialised from the local provider directory: (terraform, directory, environment)."""
    tool = require_tool("terraform")
    plugin_dir = Path(os.environ.get("TF_PLUGIN_DIR", "/opt/tf-plugins"))
    if not (plugin_dir / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
        pytest.fail(f"no hashicorp/aws provider under {plugin_dir}: set TF_PLUGIN_DIR to a plugin directory")
    tmp = tmp_path_factory.mktemp("terraform")
    module = tmp / "module"
    shutil.copytree(TERRAFORM, module, ignore=shutil.ignore_patterns(".terraform*", "*.tfstate*", "tests"))
    env = terraform_env(tmp)
    init = run(
        [tool, "init", "-backend=false", f"-plugin-dir={plugin_dir}", "-input=false", "-no-color"],
        cwd=module,
        env=env,
    )
    assert_ok(init, "terraform init")
    return tool, module, env


@pytest.fixture(scope="module")
def terraform_runs(terraform_module) -> tuple[dict[str, str], str]:
    """``terraform test`` of the module against a mock AWS: ({run name: pass/fail}, the whole output)."""
    tool, module, env = terraform_module
    tests = module / "tests"
    tests.mkdir()
    (tests / "module.tftest.hcl").write_text(TFTEST % {**VARIABLES, "public_ip": PUBLIC_IP}, encoding="utf-8")
    result = run([tool, "test", "-no-color"], cwd=module, env=env, timeout=300)
    output = result.stdout + result.stderr
    statuses = dict(re.findall(r'^\s*run "([\w-]+)"\.\.\. (\w+)', output, re.M))
    assert statuses, f"terraform test ran nothing:\n{output}"
    return statuses, output


def assert_runs_pass(terraform_runs: tuple[dict[str, str], str], *names: str) -> None:
    statuses, output = terraform_runs
    failed = {name: statuses.get(name, "not run") for name in names if statuses.get(name) != "pass"}
    assert not failed, f"terraform test runs {failed}:\n{output}"


@pytest.mark.parametrize("name", ["main.tf", "variables.tf", "outputs.tf"])
def test_terraform_files_parse(name):
    parsed = hcl(TERRAFORM / name)
    assert parsed, f"{name} parsed to nothing"


def test_terraform_fmt_and_validate(terraform_module):
    tool, module, env = terraform_module
    assert_ok(run([tool, "fmt", "-check", "-diff", "-no-color"], cwd=TERRAFORM, env=env), "terraform fmt -check")
    result = run([tool, "validate", "-no-tests", "-no-color"], cwd=module, env=env)
    assert_ok(result, "terraform validate")
    assert "The configuration is valid" in result.stdout


def test_terraform_variables(terraform_runs):
    variables = terraform_variables()
    assert variables["region"]["default"] == "us-east-1"
    assert variables["instance_type"]["default"] == "t3.medium"
    assert "key_name" in variables
    for name in ("allowed_cidr", "ssh_cidr", "repo_url"):
        assert "default" not in variables[name], f"{name} must have no default: the user sets their own"
    # Each validation refuses what it should (terraform evaluates the conditions).
    assert_runs_pass(
        terraform_runs,
        "ssh_open_to_the_world",
        "ssh_cidr_not_a_cidr",
        "allowed_cidr_not_a_cidr",
        "repo_url_with_a_quote",
        "repo_url_not_a_git_url",
        "repo_branch_with_a_space",
    )


def test_terraform_security_group_ingress(terraform_runs):
    """Ports 22 from ssh_cidr and 5000/8501/9090 from allowed_cidr only; all egress."""
    assert_runs_pass(terraform_runs, "security_group")
    # Nothing else in the module can open a port: the group's inline rules are the only ones.
    resources = terraform_resources()
    assert set(resources) == {"aws_security_group", "aws_instance"}, set(resources)


def test_terraform_instance_hardening(terraform_runs):
    assert_runs_pass(terraform_runs, "instance")


def test_terraform_outputs(terraform_runs):
    outputs = blocks(hcl(TERRAFORM / "outputs.tf"), "output")
    assert {"public_ip", "api_url", "streamlit_url", "prometheus_url", "ssh_command"} <= set(outputs)
    assert_runs_pass(terraform_runs, "outputs", "outputs_with_key")


def rendered_user_data(variables: dict[str, Any]) -> str:
    """user_data.sh as templatefile() renders it (the "user_data" run checks this is exactly what terraform does)."""
    text = (TERRAFORM / "user_data.sh").read_text(encoding="utf-8")
    return text.replace("${repo_url}", variables["repo_url"]).replace("${repo_branch}", variables["repo_branch"])


def test_terraform_user_data_template(terraform_runs, tmp_path):
    assert_runs_pass(terraform_runs, "user_data")
    text = rendered_user_data(VARIABLES)
    script = tmp_path / "user_data.sh"
    script.write_text(text, encoding="utf-8")
    assert_ok(run(["bash", "-n", str(script)]), "bash -n on the rendered user data")
    assert f"REPO_URL='{VARIABLES['repo_url']}'" in text.splitlines()
    assert f"REPO_BRANCH='{VARIABLES['repo_branch']}'" in text.splitlines()
    # The bootstrap installs system packages on first boot of an EC2 instance: not run here, only read.
    assert "dnf install -y docker git" in text
    assert "$REPO_URL" in text
    # Compose publishes on 127.0.0.1 unless BIND_HOST says otherwise; the instance is reached from
    # allowed_cidr through the security group, so the stack must be started with BIND_HOST=0.0.0.0.
    starts = [
        line.strip()
        for line in text.splitlines()
        if "./run_demo.sh" in line and not line.strip().startswith(("#", "log "))
    ]
    assert starts == ["RUN_MODE=docker BIND_HOST=0.0.0.0 bash ./run_demo.sh"], starts
