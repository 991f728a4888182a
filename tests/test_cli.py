"""cli.py: every command works from a shell, prints --json for automation, errors are one line."""

from __future__ import annotations

import json

import pytest

from conftest import PLAN, cli, edit_yaml


def test_help_for_every_command(project):
    for command in (["--help"], ["init", "--help"], ["demo", "--help"], ["run", "--help"], ["gate", "--help"],
                    ["verify", "--help"], ["report", "--help"], ["dataset", "add", "--help"],
                    ["dataset", "verify", "--help"], ["template", "add", "--help"], ["plan", "freeze", "--help"],
                    ["plan", "amend", "--help"], ["plan", "check", "--help"], ["runs", "list", "--help"],
                    ["runs", "show", "--help"], ["index", "rebuild", "--help"], ["site", "--help"],
                    ["compare", "--help"], ["baseline", "--help"], ["decide", "--help"],
                    ["rollout", "status", "--help"]):
        done = cli(project, *command)
        assert done.returncode == 0 and "Usage:" in done.stdout, (command, done.stderr)


def test_plan_lifecycle_from_the_shell(project):
    unfrozen = cli(project, "plan", "check")
    assert unfrozen.returncode == 0 and "not frozen" in unfrozen.stdout, "drafts have nothing to match yet"
    frozen = cli(project, "plan", "freeze", PLAN, "--json")
    assert frozen.returncode == 0, frozen.stderr
    entry = json.loads(frozen.stdout)
    assert entry["version"] == 1 and len(entry["plan_hash"]) == 64
    check = cli(project, "plan", "check", PLAN, "--json")
    assert check.returncode == 0 and json.loads(check.stdout)[0]["state"] == "frozen, unchanged"
    everything = cli(project, "plan", "check", "--json")
    assert everything.returncode == 0, "plans/rollout.yaml is not frozen yet: listed, not counted"
    assert {c["path"]: c["state"] for c in json.loads(everything.stdout)} == {
        "plans/example.yaml": "frozen, unchanged", "plans/rollout.yaml": "not frozen"}
    edit_yaml(project.root / PLAN, (("alpha",), 0.01))
    assert "changed since freeze" in cli(project, "plan", "check").stdout
    refused = cli(project, "run", PLAN)
    assert refused.returncode == 1 and "was edited after its latest frozen version" in refused.stderr
    assert "Traceback" not in refused.stderr
    amended = cli(project, "plan", "amend", PLAN, "--reason", "stricter alpha", "--json")
    assert json.loads(amended.stdout)["version"] == 2


def test_run_list_show_and_rebuild(project):
    cli(project, "plan", "freeze", PLAN)
    ran = cli(project, "run", PLAN, "--json")
    assert ran.returncode == 0, ran.stderr
    result = json.loads(ran.stdout)
    assert result["status"] == "COMPLETED" and result["decision"] == "ship"
    listed = json.loads(cli(project, "runs", "list", "--plan", "example", "--json").stdout)
    assert [r["run_id"] for r in listed] == [result["run_id"]]
    paged = cli(project, "runs", "list", "--limit", "1", "--offset", "1", "--json")
    assert json.loads(paged.stdout) == [] and "runs none of 1" in paged.stderr
    latest = cli(project, "runs", "list", "--limit", "1", "--newest")
    assert result["run_id"] in latest.stdout and "runs 1-1 of 1" in latest.stderr
    shown = json.loads(cli(project, "runs", "show", result["run_id"], "--json").stdout)
    assert shown["plan"]["id"] == "example" and shown["environment"]["distributions"]["papermill"]
    assert shown["verified"] is True and shown["problems"] == []
    human = cli(project, "runs", "show", "latest").stdout
    assert "decision ship" in human
    assert "indexed 1 runs" in cli(project, "index", "rebuild").stdout


def test_inadmissible_run_exits_4_and_says_why(project):
    cli(project, "plan", "freeze", PLAN)
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text() + "999999,control,ios,2026-11-24,0.00,0.00,0\n")
    done = cli(project, "run", PLAN)
    assert done.returncode == 4
    assert "INADMISSIBLE" in done.stdout and "does not match its pin" in done.stdout
    assert all(line.startswith("· ") for line in done.stderr.splitlines()), done.stderr  # progress only


def test_dataset_add_and_verify(project, tmp_path):
    contract = tmp_path / "contract.yaml"
    contract.write_text("unique: [id]\ncolumns:\n  id: {type: int}\n  score: {type: float, min: 0, max: 1}\n")
    data = project.root / "data" / "scores.csv"
    data.write_text("id,score\n1,0.5\n2,0.25\n")
    added = cli(project, "dataset", "add", "scores", "data/scores.csv", "--contract", str(contract), "--json")
    assert added.returncode == 0, added.stderr
    assert json.loads(added.stdout)["contract"]["columns"]["score"]["max"] == 1
    assert cli(project, "dataset", "verify").returncode == 0
    data.write_text("id,score\n1,0.5\n2,1.25\n")
    failed = cli(project, "dataset", "verify", "scores", "--json")
    assert failed.returncode == 3
    assert "does not match its pin" in json.loads(failed.stdout)["datasets"]["scores"]["problems"][0]


def test_outside_a_project_the_error_says_what_to_do(tmp_path):
    done = cli(tmp_path, "runs", "list")
    assert done.returncode == 1 and "no catalog.yaml" in done.stderr and "impactbook init" in done.stderr


@pytest.mark.parametrize("args, where, said", [
    (("run", "plans/missing.yaml"), "plans/missing.yaml", "cannot read file"),
    (("runs", "show", "nosuchrun"), "runs/index.sqlite", "no run 'nosuchrun'"),
    (("gate", "nosuchrun"), "runs/index.sqlite", "no run 'nosuchrun'"),
    (("plan", "freeze", "plans/missing.yaml"), "plans/missing.yaml", "cannot read file"),
])
def test_with_json_a_failing_command_answers_on_stdout_too(project, args, where, said):
    done = cli(project, *args, "--json")
    answer = json.loads(done.stdout)
    assert done.returncode == answer["exit_code"] == 1 and said in answer["error"], answer
    assert answer["where"].endswith(where) and f"error: {answer['where']}" in done.stderr


def test_debug_shows_the_traceback(tmp_path):
    done = cli(tmp_path, "--debug", "runs", "list")
    assert "Traceback" in done.stderr


def test_usage_mistakes_exit_2_with_the_usage_line_and_never_an_internal_error(project):
    version = cli(project, "--version")
    assert version.returncode == 0 and version.stdout.startswith("impactbook ")
    for args, problem in ((["frobnicate"], "No such command 'frobnicate'"),
                          (["runs", "list", "--bogus"], "No such option: --bogus"),
                          (["gate"], "Missing argument"),
                          (["run", PLAN, "--timeout", "soon"], "Invalid value"),
                          (["run", PLAN, "--timeout", "0"], "Invalid value for '--timeout'"),
                          (["runs", "list", "--limit", "9" * 20], "Invalid value for '--limit'"),
                          (["runs", "list", "--offset", "9" * 20], "Invalid value for '--offset'"),
                          (["run", "--all", "--workers", "9" * 20], "Invalid value for '--workers'")):
        done = cli(project, *args)
        assert done.returncode == 2, (args, done.stderr)
        assert "Usage: impactbook" in done.stderr and problem in done.stderr, done.stderr
        assert "internal error" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize("args, field, said", [
    (("runs", "show"), "run", "Missing argument 'run'"),
    (("runs", "list", "--limit", "-1"), "--limit", "Invalid value for '--limit'"),
    (("plan", "amend", PLAN), "--reason", "Missing option '--reason'"),
    (("run",), None, "give a plan file"),
])
def test_with_json_a_usage_mistake_answers_on_stdout_too(project, args, field, said):
    done = cli(project, *args, "--json")
    answer = json.loads(done.stdout)
    assert done.returncode == answer["exit_code"] == 2 and said in answer["error"], answer
    assert answer["field"] == field and "Usage: impactbook" in done.stderr or field is None, (answer, done.stderr)


def test_an_interrupt_while_the_cli_imports_is_one_line_and_exit_130(tmp_path):
    import subprocess
    import sys

    interrupted_import = (  # Ctrl-C landing while impactbook.cli is being imported
        "import sys\n"
        "class Interrupt:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'impactbook.cli':\n"
        "            raise KeyboardInterrupt\n"
        "sys.meta_path.insert(0, Interrupt())\n"
        "from impactbook.__main__ import run\n"
        "run()\n")
    done = subprocess.run([sys.executable, "-c", interrupted_import], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert (done.returncode, done.stderr) == (130, "error: interrupted\n")
    script = subprocess.run([sys.executable, "-c", "import importlib.metadata as m; "
                             "print(m.entry_points(group='console_scripts')['impactbook'].value)"],
                            capture_output=True, text=True, timeout=120)
    assert script.stdout.strip() == "impactbook.__main__:run"  # the installed script goes through run() too


def test_progress_messages_are_text_not_markup(capsys):
    from impactbook import cli

    cli._progress("s3://Bad Bucket!/p: Invalid bucket name: must match ^[a-z0-9]([/:]|$) [bold]")
    shown = capsys.readouterr().err  # (rich read "[/:]" as a closing tag: MarkupError, an internal error)
    assert "([/:]|$) [bold]" in shown


def test_a_server_that_cannot_be_reached_is_named_not_an_internal_error(project):
    s3 = cli(project, "verify", env={"IMPACTBOOK_STORAGE": "s3://nobucket/runs",
                                     "AWS_ENDPOINT_URL": "http://127.0.0.1:1",  # nothing listens on port 1
                                     "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"})
    assert s3.returncode == 1 and "internal error" not in s3.stderr, s3.stderr
    assert s3.stderr.startswith("error: the S3 store could not be used (EndpointConnectionError")
    assert "the run store is s3://nobucket/runs (set by $IMPACTBOOK_STORAGE;" in s3.stderr  # which one chose it
    index = cli(project, "runs", "list", env={"IMPACTBOOK_INDEX": "postgresql://ci:hunter2@127.0.0.1:1/impactbook"})
    assert index.returncode == 1 and "internal error" not in index.stderr, index.stderr
    assert index.stderr.startswith("error: PostgreSQL could not be used (OperationalError")
    assert "hunter2" not in index.stderr
    assert "(set by $IMPACTBOOK_INDEX)" in index.stderr and len(index.stderr.splitlines()) == 1
    project.catalog_path.write_text(project.catalog_path.read_text()
                                    + "settings:\n  index: postgresql://ci@127.0.0.1:1/impactbook\n")
    index = cli(project, "runs", "list")
    assert "(set by catalog.yaml settings.index)" in index.stderr, index.stderr


@pytest.mark.parametrize("args", [("runs", "list", "--json"), ("run", PLAN, "--scheduler", "tcp://x:1", "--json")])
def test_output_piped_into_a_reader_that_left_is_no_traceback(project, args):
    """`impactbook … --json | head -1`: the reader closes the pipe; writing to it raised BrokenPipeError,
    printed with a traceback (an error's JSON was written after the error line)."""
    import subprocess
    import sys

    child = subprocess.Popen([sys.executable, "-m", "impactbook", *args], cwd=project.root, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    child.stdout.close()  # before the command has printed anything
    stderr = child.stderr.read()
    assert child.wait(timeout=120) in (0, 1, 141) and "Traceback" not in stderr, stderr


def test_with_json_a_plan_error_names_its_file_line_and_field(project):
    edit_yaml(project.root / PLAN, (("alpha",), 7), (("seed",), "x"))
    done = cli(project, "plan", "freeze", PLAN, "--json")
    answer = json.loads(done.stdout)
    assert done.returncode == 1 and answer["where"].startswith(f"{PLAN}:") and answer["field"] == "alpha", answer
    assert "alpha: Input should be less than 0.5 (got 7)" in answer["error"] and "seed:" in answer["error"]
    assert f"error: {answer['where']}: alpha: Input should be less than 0.5" in done.stderr, done.stderr


def test_control_characters_and_bidi_overrides_in_printed_text_are_shown_as_escapes():
    """A decision's reason (or any plan text) with an escape sequence recoloured or cleared the terminal of
    whoever ran `rollout status`; U+202E reversed the rest of the line."""
    from impactbook.cli import out

    with out.capture() as captured:
        out.print("ok \x1b[2J\u202egnitset\x00 end\nnext", markup=False)
    assert captured.get() == "ok \\u001b[2J\\u202egnitset\\u0000 end\nnext\n"

    from impactbook import cli as module

    with out.capture() as captured, pytest.MonkeyPatch.context() as patch:
        patch.setattr(module.sys.stdout, "isatty", lambda: True)  # --json on a terminal: printed by rich
        patch.setitem(module._state, "emitted", False)  # (restored: other tests' commands start afresh)
        module._emit({"reason": "a\u202eb\x9b31m"})
    assert "\u202e" not in captured.get() and "\\u202e" in captured.get() and "\x9b" not in captured.get()
