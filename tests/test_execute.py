"""execute.py: the kernel's start-up imports (beside the gate) change nothing a notebook shows, and a refused
admission stops the kernel before its first cell."""

from __future__ import annotations

from concurrent.futures import Future

import nbformat

from impactbook.execute import LaunchedKernel, execute_template, preloaded_modules

CELLS = [
    "import matplotlib.pyplot as plt\nimport pandas as pd\nfrom IPython.display import Markdown, display\n"
    "import helpers",
    "%matplotlib inline\nimport json",
    "print(sorted(globals()))\n"
    "import sys; print(sorted(m for m in ('pandas', 'seaborn', 'json') if m in sys.modules))",
    "display(pd.DataFrame({'a': [1, 2]}))\nplt.plot([1, 2, 3]); plt.show()\nhelpers.VALUE",
]


def _template(folder, cells=CELLS):
    notebook = nbformat.v4.new_notebook()
    notebook.cells = [nbformat.v4.new_code_cell("x = 1", metadata={"tags": ["parameters"]}),
                      *[nbformat.v4.new_code_cell(source) for source in cells]]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = folder / "template.ipynb"
    nbformat.write(notebook, path)
    (folder / "helpers.py").write_text("VALUE = 42\n")  # the project's own module: imported by its cell only
    return path


def _ruling(admitted: bool) -> Future:
    future: Future = Future()
    future.set_result(admitted)
    return future


def _outputs(path):
    notebook = nbformat.read(path, as_version=4)
    return [(c.execution_count, [{k: v for k, v in o.items() if k != "metadata"} for o in c.outputs])
            for c in notebook.cells if c.cell_type == "code"]


def test_preloaded_modules_are_the_templates_top_level_imports_the_environment_provides(tmp_path):
    path = _template(tmp_path)
    assert preloaded_modules(path, tmp_path) == ["matplotlib.pyplot", "pandas", "IPython.display", "sys"]
    (tmp_path / "pandas.py").write_text("raise SystemExit('project code ran before the gate')\n")
    assert preloaded_modules(path, tmp_path) == ["matplotlib.pyplot", "IPython.display", "sys"], \
        "a name the project folder shadows is the project's own module in the kernel: never preloaded"


def test_a_kernel_that_imported_the_templates_modules_at_start_up_shows_the_same_notebook(project, tmp_path):
    path = _template(project.root)
    plain, preloaded = tmp_path / "plain" / "out.ipynb", tmp_path / "preloaded" / "out.ipynb"
    for output in (plain, preloaded):
        output.parent.mkdir()
    assert execute_template(project, path, plain, {"x": 2},
                            kernel=LaunchedKernel(project, path, plain.parent, seed=1)).ok
    execution = execute_template(project, path, preloaded, {"x": 2},
                                 kernel=LaunchedKernel(project, path, preloaded.parent, seed=1, admitted=_ruling(True)))
    assert execution.ok, execution.error
    shown = _outputs(preloaded)
    assert shown == _outputs(plain), "start-up imports changed what the notebook shows (names, counts, outputs)"
    names, modules = shown[4][1][0]["text"].splitlines()  # after the parameters and papermill's injected cell
    assert "'pd'" in names and "impactbook" not in names and modules == "['json', 'pandas']"
    assert [kind for kind in shown[5][1] if kind["output_type"] == "display_data"][1]["data"]["image/png"]


def test_a_refused_admission_runs_no_cell(project, tmp_path):
    path = _template(project.root, ["open('ran.txt', 'w').write('ran')"])
    (tmp_path / "out").mkdir()
    kernel = LaunchedKernel(project, path, tmp_path / "out", seed=1, admitted=_ruling(False))
    assert kernel.pid is None  # refused before its launch
    execution = execute_template(project, path, tmp_path / "out" / "out.ipynb", {"x": 2}, kernel=kernel)
    assert execution.refused and not execution.ok and execution.cells == []
    assert not (project.root / "ran.txt").exists()


def test_a_kernel_launched_but_never_adopted_is_stopped_on_release(project, tmp_path):
    """The runner launches the kernel before papermill is imported; if nothing ever adopts it (papermill failed
    first), release stops it and nothing of it is left running."""
    import os

    path = _template(project.root)
    kernel = LaunchedKernel(project, path, tmp_path, seed=1, admitted=_ruling(True))
    assert kernel.pid is not None
    os.kill(kernel.pid, 0)  # running
    kernel.release()
    try:
        os.kill(kernel.pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"kernel {kernel.pid} still runs after release")
    kernel.release()  # (twice: nothing left to do)


def test_the_adopted_kernel_is_the_launched_one_with_the_runs_environment(project, tmp_path):
    import json
    import os

    path = _template(project.root, ["import os, json\nprint(json.dumps([os.getpid(), os.getcwd(), *(os.environ[name] "
                                    "for name in ('PYTHONHASHSEED', 'IMPACTBOOK_PINS', 'EXTRA'))]))"])
    (tmp_path / "out").mkdir()
    kernel = LaunchedKernel(project, path, tmp_path / "out", seed=7, pins={"d": {"sha256": "ab"}},
                            environment={"EXTRA": "yes"}, admitted=_ruling(True))
    pid = kernel.pid
    execution = execute_template(project, path, tmp_path / "out" / "out.ipynb", {"x": 2}, kernel=kernel)
    assert execution.ok, execution.error
    assert kernel.adopted
    printed = json.loads(_outputs(tmp_path / "out" / "out.ipynb")[2][1][0]["text"])
    assert printed == [pid, str(project.root), "7", json.dumps({"d": {"sha256": "ab"}}), "yes"]
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError("the kernel outlived its run")
    again = execute_template(project, path, tmp_path / "out" / "again.ipynb", {"x": 2}, kernel=kernel)
    assert not again.ok and "already adopted" in again.error  # one kernel, one run: never a second, bare one


def test_the_runs_kernel_client_is_ready_when_the_kernel_first_answers(project, tmp_path):
    """jupyter_client's wait_for_ready ends by draining IOPub until it has been silent for 0.2 s (a pause on every
    run's critical path, and no end at all while the kernel keeps printing); the run's client is ready once the
    kernel has answered kernel_info and IOPub is connected. Here a start-up script prints every 20 ms."""
    import asyncio

    startup = tmp_path / "ipython/profile_default/startup"
    startup.mkdir(parents=True)
    (startup / "chatty.py").write_text("import threading, time\n"
                                       "def _tick():\n    for _ in range(3000):\n        print('tick', flush=True)\n"
                                       "        time.sleep(0.02)\n"
                                       "threading.Thread(target=_tick, daemon=True).start()\n")
    kernel = LaunchedKernel(project, _template(project.root), tmp_path, seed=1,
                            environment={"IPYTHONDIR": str(tmp_path / "ipython")})
    client = kernel._manager.client()
    client.start_channels()
    try:
        asyncio.run(asyncio.wait_for(client.wait_for_ready(timeout=60), timeout=30))
    finally:
        client.stop_channels()
        kernel.release()


def test_the_runs_kernel_client_fails_when_the_kernel_dies_before_answering(project, tmp_path):
    import asyncio
    import os
    import signal

    import pytest

    kernel = LaunchedKernel(project, _template(project.root), tmp_path, seed=1)
    os.kill(kernel.pid, signal.SIGKILL)
    client = kernel._manager.client()
    client.start_channels()
    try:
        with pytest.raises(RuntimeError, match="Kernel died before replying to kernel_info"):
            asyncio.run(client.wait_for_ready(timeout=60))
    finally:
        client.stop_channels()
        kernel.release()


def test_a_killed_kernel_is_seen_gone_within_10_ms_polls(project, tmp_path, monkeypatch):
    """Every run ends with its kernel killed; jupyter_client then polls for the process's end every 100 ms."""
    import asyncio
    import os

    from impactbook.execute import _run_async

    kernel = LaunchedKernel(project, _template(project.root), tmp_path, seed=1)
    pid, pauses, sleep = kernel.pid, [], asyncio.sleep

    async def recorded(delay, *args, **kwargs):
        pauses.append(delay)
        return await sleep(delay, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", recorded)
    _run_async(kernel._manager.shutdown_kernel, now=True)
    monkeypatch.undo()
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        pass
    else:
        raise AssertionError(f"kernel {pid} still runs")
    assert pauses and max(pauses) <= 0.01
