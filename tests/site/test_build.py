"""site/build.py and site/pages.py: the static site — index, plan, run and comparison pages — self-contained and escaped.
The same site is opened in a real headless Chromium by test_browser.py."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
import time

import pytest

from impactbook.catalog import Catalog, Contract
from impactbook.demo import DEMO_CONTRACT
from impactbook.errors import ImpactbookError
from impactbook.freezing import freeze_plan
from impactbook.processes import usable_cores
from impactbook.site import build, pages, plots
from impactbook.compare import RunEffects
from impactbook.site.build import build_site
from conftest import PLAN, cli, edit_yaml, make_project, run

EVIL_TITLE = "<script>window.__pwned = 1</script> ranker"
EVIL_PLATFORM = "<img src=x onerror=window.__pwned=2>"


def hostile_project(root):
    """A project whose plan title and one category value in the data are markup."""
    project = make_project(root)
    data = project.root / "data/demo_experiment.csv"
    data.write_text(data.read_text().replace(",web,", f",{EVIL_PLATFORM},"))
    contract = DEMO_CONTRACT.model_dump(mode="json", exclude_defaults=True)
    contract["columns"]["platform"]["allowed"] = ["ios", "android", EVIL_PLATFORM]
    Catalog.load(project).pin_dataset("demo_experiment", data, contract=Contract.model_validate(contract),
                                         replace=True, reason="test data", synthetic=True)
    edit_yaml(project.root / PLAN, (("title",), EVIL_TITLE))
    freeze_plan(project, PLAN)
    return project, [run(project).record.run_id, run(project).record.run_id]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("site")
    project, runs = hostile_project(root / "project")
    summary = build_site(project, root / "site", [runs])
    return project, runs, summary


def test_every_page_is_written_and_linked(site):
    project, runs, summary = site
    index = (summary.out / "index.html").read_text()
    assert 'href="plans/example.html"' in index
    assert all(f'href="runs/{r}.html"' in index for r in runs)
    assert f'href="compare/{summary.comparisons[0]}"' in index
    run_page = (summary.out / "runs" / f"{runs[0]}.html").read_text()
    assert "Decision: SHIP" in run_page and "Artifact verification" in run_page and "All artifacts match" in run_page
    assert "conversion rose" in run_page and " pp (95% CI " in run_page
    stored = (project.runs_dir / runs[0] / "report.html").stat().st_size
    assert len(run_page.encode()) < stored / 2  # the report's theme is shared, not copied into every page
    shared = list((summary.out / "assets").glob("*.css"))
    assert shared and all(f'href="../assets/{css.name}"' in run_page for css in shared)
    assert all(hashlib.sha256(css.read_bytes()).hexdigest().startswith(css.stem) for css in shared)
    plan_page = (summary.out / "plans/example.html").read_text()
    assert "Versions and amendments" in plan_page and plan_page.count("data:image/png;base64,") >= 3
    compare_page = (summary.out / "compare" / summary.comparisons[0]).read_text()
    assert "conversion" in compare_page and "(reference)" in compare_page


def test_nothing_external_is_referenced(site):
    _, _, summary = site
    for page in summary.out.rglob("*.html"):
        html = page.read_text()
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), page
        assert "Content-Security-Policy" in html, page


def test_strings_from_plans_and_data_are_escaped(site):
    _, runs, summary = site
    for page in summary.out.rglob("*.html"):
        html = page.read_text()
        assert "<script>window.__pwned" not in html, page
        assert "<img src=x onerror" not in html, page
    index = (summary.out / "index.html").read_text()
    assert "&lt;script&gt;window.__pwned = 1&lt;/script&gt; ranker" in index
    run_page = (summary.out / "runs" / f"{runs[0]}.html").read_text()
    assert "&lt;img src=x onerror=window.__pwned=2&gt;" in run_page


HOSTILE_ROWS = [
    {"run_id": "r<1>", "plan_version": 2, "candidate": EVIL_PLATFORM, "status": "COMPLETED", "decision": "ship\"'",
     "verdicts": {"a&b": "PASS", "c": EVIL_TITLE}, "plan_id": "<p>", "started_at": "<t>"},
    {"run_id": "r2", "plan_version": 1, "candidate": "m", "status": "FAILED", "decision": "hold", "verdicts": {},
     "plan_id": "p", "started_at": "t"}]


def test_run_tables_built_without_jinja_escape_exactly_as_jinja_does():
    """The index's and plan pages' run tables (10,000 rows) skip a template call per row: same bytes as the loop."""
    loop = pages.PAGE.from_string(
        '{% for run in runs %}<tr><td><a href="../runs/{{ run.run_id }}.html">{{ run.run_id }}</a></td><td>'
        '{{ run.plan_version }}</td><td>{{ run.candidate }}</td>\n<td>{{ run.status }}</td><td><span class="badge '
        'decision-{{ run.decision }}">{{ run.decision }}</span></td><td>{% for k, v in run.verdicts.items() %}'
        '{{ k }}: {{ v }}{% if not loop.last %}; {% endif %}{% endfor %}</td></tr>{% endfor %}')
    assert str(pages.plan_run_rows(HOSTILE_ROWS)) == loop.render(runs=HOSTILE_ROWS)
    assert "&lt;img src=x onerror" in str(pages.run_rows(HOSTILE_ROWS))
    assert "<img" not in str(pages.run_rows(HOSTILE_ROWS)) + str(pages.plan_run_rows(HOSTILE_ROWS))


def test_site_command(site):
    project, _, _ = site
    done = cli(project, "site", "--out", "public", "--json")
    assert done.returncode == 0, done.stderr
    assert (project.root / "public/index.html").exists()


def test_a_mistaken_comparison_is_said_before_any_page_is_written(site):
    project, runs, _ = site
    for group, said in ((f"{runs[0]},nope", "nope"), (runs[0], "names fewer than two different runs"),
                        (f"{runs[0]},{runs[0]}", "names fewer than two different runs"),
                        (f"{runs[0]},", "has an empty run name"), (",,", "has an empty run name")):
        done = cli(project, "site", "--out", "mistaken", "--compare", group)
        assert done.returncode != 0 and said in done.stderr, done.stderr
        assert "Traceback" not in done.stderr and done.stderr.count("--compare") <= 1, done.stderr
        written = [p for p in (project.root / "mistaken").rglob("*") if p.is_file()]
        assert written == [], f"nothing is written when the command fails: {written}"


PARALLEL_BUILD = """
import os, sys
from pathlib import Path
from impactbook.site import build
from impactbook.project import Project

root, out, when, workers = sys.argv[1:]
Path(workers).mkdir()
render_task = build._render_task


def marked(*args, **kwargs):
    assert os.getpid() != parent, "rendered in the parent"
    (Path(workers) / str(os.getpid())).touch()
    return render_task(*args, **kwargs)


parent = os.getpid()
build._render_task, build.PARALLEL_FROM, build.RUNS_PER_TASK = marked, 1, 1
build.build_site(Project(Path(root)), Path(out), full=True, generated=when)
"""


def _pages(out):
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_incremental_build_renders_only_new_runs_and_equals_a_build_from_scratch(frozen_project, tmp_path,
                                                                                   monkeypatch):
    when = "2026-11-23 07:00 UTC"
    first = run(frozen_project).record.run_id
    out = tmp_path / "site"
    messages = []
    assert build_site(frozen_project, out, generated=when, progress=messages.append).rendered == 1
    assert messages == ["site: 1 of 1 run pages verified and written"]
    before = _pages(out)
    assert build_site(frozen_project, out, generated=when).rendered == 0
    assert _pages(out) == before
    second = run(frozen_project).record.run_id
    loaded = []
    real_load = RunEffects.load.__func__
    monkeypatch.setattr(RunEffects, "load", classmethod(lambda cls, folder: loaded.append(folder.name)
                                                        or real_load(cls, folder)))
    again = build_site(frozen_project, out, generated=when)
    assert again.rendered == 1 and again.runs == 2
    assert loaded == [second]  # the plan page's trends and baseline use the first run's effects kept by the last build
    assert (out / "runs" / f"{second}.html").read_bytes() != b""
    assert (out / "runs" / f"{first}.html").read_bytes() == before[f"runs/{first}.html"]
    scratch = tmp_path / "scratch"
    assert build_site(frozen_project, scratch, full=True, generated=when).rendered == 2
    assert _pages(out) == _pages(scratch)
    assert "across 2 runs, by model version" in (out / "plans/example.html").read_text()
    forked = tmp_path / "forked"  # many stale runs: pages written by a pool of processes, same bytes
    subprocess.run([sys.executable, "-c", PARALLEL_BUILD, str(frozen_project.root), str(forked), when,
                    str(tmp_path / "workers")], check=True)
    assert _pages(forked) == _pages(scratch)
    assert list((tmp_path / "workers").iterdir()), "no worker process rendered a page"
    monkeypatch.setattr(pages, "TREND_RUNS", 1)  # a plan with many runs plots its latest ones
    capped = build_site(frozen_project, tmp_path / "capped", generated=when)
    assert "across the latest 1 of 2 runs, by model version" in (capped.out / "plans/example.html").read_text()


def test_a_changed_run_is_rerendered_and_shows_the_failed_check(frozen_project, tmp_path):
    first = run(frozen_project)
    out = tmp_path / "site"
    build_site(frozen_project, out)
    report = first.folder / "report.html"
    report.chmod(0o644)
    report.write_text(report.read_text().replace("</body>", "<p>edited after publishing</p></body>"))
    again = build_site(frozen_project, out)
    assert again.rendered == 1
    page = (out / "runs" / f"{first.record.run_id}.html").read_text()
    assert "edited after publishing" in page and "ib-verify-failed" in page
    assert "The ledger does not verify" not in (out / "index.html").read_text()
    manifest = json.loads((out / ".site-manifest.json").read_text())
    manifest["ledger"] = {"bytes": 1, "entries": "many", "state": [], "problems": 5}  # not what a build writes
    (out / ".site-manifest.json").write_text(json.dumps(manifest))
    lines = frozen_project.ledger_path.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["reason"] = "edited"
    lines[1] = json.dumps(entry)
    frozen_project.ledger_path.write_text("\n".join(lines) + "\n")
    index = (build_site(frozen_project, out).out / "index.html").read_text()
    assert "The ledger does not verify" in index
    assert "ledger.jsonl entry 2: content does not match its hash (the entry was edited)" in index


def test_a_site_folder_emptied_between_builds_gets_its_shared_styles_again(frozen_project, tmp_path):
    """The theme written once per build is remembered (so later pages skip hashing it), never across builds."""
    import shutil

    run(frozen_project)
    out = tmp_path / "site"
    for _ in range(2):
        build_site(frozen_project, out)
        page = next((out / "runs").glob("*.html")).read_text()
        linked = re.findall(r'href="\.\./(assets/[0-9a-f]{24}\.css)"', page)
        assert len(linked) >= 2 and all((out / name).is_file() for name in linked), linked
        shutil.rmtree(out)


def test_a_damaged_or_deleted_shared_style_is_restored_by_an_incremental_build(frozen_project, tmp_path):
    import hashlib

    run(frozen_project)
    out = tmp_path / "site"
    build_site(frozen_project, out)
    styles = sorted((out / "assets").glob("*.css"))
    assert len(styles) >= 2
    originals = {path.name: path.read_bytes() for path in styles}
    assert build_site(frozen_project, out).rendered == 0, "nothing changed, nothing rendered"
    styles[0].write_bytes(b"body { display: none }")  # edited in place
    styles[1].unlink()                                 # and deleted
    (out / "assets" / ("0" * 24 + ".css")).write_text("a { color: red }")  # and one slipped in under a false name
    told = []
    again = build_site(frozen_project, out, progress=told.append)
    assert again.rendered == 1, "the run page that links them is rendered again"
    assert {path.name: path.read_bytes() for path in (out / "assets").glob("*.css")} == originals
    assert all(hashlib.sha256(data).hexdigest()[:24] + ".css" == name for name, data in originals.items())
    assert any(styles[0].name in line and styles[1].name in line and "missing or changed" in line for line in told)
    assert build_site(frozen_project, out).rendered == 0, "and the next build finds nothing to repair"

    precious = tmp_path / "precious.txt"  # a manifest naming another file makes the build delete nothing
    precious.write_text("keep")
    (out / "assets" / "README.txt").write_text("the site's maintainers' notes")
    manifest = json.loads((out / ".site-manifest.json").read_text())
    assert manifest["assets"] == sorted(originals)
    manifest["assets"] += ["../../precious.txt", "README.txt"]
    (out / ".site-manifest.json").write_text(json.dumps(manifest))
    for _ in range(2):
        assert build_site(frozen_project, out).rendered == 0
    assert precious.read_text() == "keep" and (out / "assets" / "README.txt").is_file()
    styles[0].unlink()
    styles[0].mkdir()  # a folder where a stylesheet belongs: named, not removed
    with pytest.raises(ImpactbookError, match="a folder where the site keeps a shared stylesheet") as refused:
        build_site(frozen_project, out)
    assert refused.value.where == str(styles[0])


def test_effect_points_are_read_only_when_pages_change_and_a_run_missing_there_is_rendered_again(frozen_project,
                                                                                               tmp_path):
    first = run(frozen_project).record.run_id
    out = tmp_path / "site"
    build_site(frozen_project, out)
    (out / ".site-effects.json").write_text("{not json")
    with pytest.MonkeyPatch.context() as patch:  # nothing changed: the effect points are not even read
        patch.setattr(build._Manifest, "effects", property(lambda self: pytest.fail("effect points read")))
        assert build_site(frozen_project, out).rendered == 0
    second = run(frozen_project).record.run_id
    again = build_site(frozen_project, out)
    assert again.rendered == 2  # the new run, and the first, whose effect points the plan page needs
    assert "across 2 runs, by model version" in (out / "plans/example.html").read_text()
    assert json.loads((out / ".site-effects.json").read_text()).keys() == {first, second}


def test_new_runs_effect_points_are_appended_and_a_build_stopped_after_the_append_renders_every_run_again(
        frozen_project, tmp_path, monkeypatch):
    first = run(frozen_project).record.run_id
    out, scratch = tmp_path / "site", tmp_path / "scratch"
    build_site(frozen_project, out)
    second, third = run(frozen_project).record.run_id, run(frozen_project).record.run_id
    rewrites = []
    real_write_text = build.Path.write_text
    monkeypatch.setattr(build.Path, "write_text", lambda path, *a, **k: (
        rewrites.append(path.name), real_write_text(path, *a, **k))[1])
    assert build_site(frozen_project, out).rendered == 2
    assert ".site-effects.json" not in rewrites  # appended to, not rewritten
    build_site(frozen_project, scratch, full=True)
    effects = (out / ".site-effects.json").read_bytes()
    assert effects == (scratch / ".site-effects.json").read_bytes()  # the very bytes of a rewrite
    assert list(json.loads(effects)) == [first, second, third]
    fourth = run(frozen_project).record.run_id
    with monkeypatch.context() as stopped:  # the effect points appended, then the build stops before its manifest
        stopped.setattr(plots.Painter, "receive", lambda self: (_ for _ in ()).throw(KeyboardInterrupt))
        with pytest.raises(KeyboardInterrupt):
            build_site(frozen_project, out)
    assert len(json.loads((out / ".site-effects.json").read_text())) == 4
    assert not (out / ".site-manifest.json").exists()
    when = "2026-11-23 07:00 UTC"  # one time on both: the two builds may straddle a minute
    assert build_site(frozen_project, out, generated=when).rendered == 4  # no manifest to trust: every run again
    build_site(frozen_project, scratch, full=True, generated=when)
    assert _pages(out) == _pages(scratch)
    assert list(json.loads((out / ".site-effects.json").read_text())) == [first, second, third, fourth]


def test_an_edited_run_beside_a_new_one_rewrites_the_effect_points_as_a_build_from_scratch_would(frozen_project,
                                                                                                  tmp_path):
    first = run(frozen_project)
    out, scratch = tmp_path / "site", tmp_path / "scratch"
    build_site(frozen_project, out)
    report = first.folder / "report.html"
    report.chmod(0o644)
    report.write_text(report.read_text().replace("</body>", "<p>edited after publishing</p></body>"))
    second = run(frozen_project).record.run_id
    assert build_site(frozen_project, out).rendered == 2
    build_site(frozen_project, scratch, full=True)
    assert (out / ".site-effects.json").read_bytes() == (scratch / ".site-effects.json").read_bytes()
    assert list(json.loads((out / ".site-effects.json").read_text())) == [first.record.run_id, second]


@pytest.mark.skipif(usable_cores() < 2, reason="the plot helper runs only beside a second core")
def test_after_new_runs_the_trend_plots_come_from_the_helper(frozen_project, tmp_path, monkeypatch):
    run(frozen_project)
    build_site(frozen_project, tmp_path / "site")
    run(frozen_project)
    monkeypatch.setattr(plots, "draw", lambda spec: pytest.fail("a plot was drawn in the build's own process"))
    build_site(frozen_project, tmp_path / "site")
    assert "across 2 runs, by model version" in (tmp_path / "site/plans/example.html").read_text()


def test_two_builds_into_one_folder_take_turns(frozen_project, tmp_path):
    import fcntl
    import os
    import threading

    run(frozen_project)
    out = tmp_path / "site"
    out.mkdir()
    holder = os.open(out, os.O_RDONLY | os.O_DIRECTORY)  # another build, as far as the lock can tell
    fcntl.flock(holder, fcntl.LOCK_EX)
    messages, built = [], []
    second = threading.Thread(target=lambda: built.append(build_site(frozen_project, out, progress=messages.append)))
    second.start()
    try:
        deadline = time.monotonic() + 60  # until the second build reaches the lock, however busy the machine
        while not messages and second.is_alive() and time.monotonic() < deadline:
            second.join(0.1)
        second.join(1)  # and a moment more, in which it must not get past the lock
        assert second.is_alive() and messages == [f"site: another build is writing {out}; waiting for it to finish"]
        assert not (out / "index.html").exists() and not (out / "runs").exists()
    finally:
        os.close(holder)
    second.join(120)
    assert built[0].rendered == 1 and (out / "index.html").exists()


def test_an_output_folder_in_the_project_or_not_a_folder_is_refused_naming_it(frozen_project):
    run(frozen_project)
    (frozen_project.root / "afile").write_text("not a folder")
    (frozen_project.root / "dangling").symlink_to("nowhere")
    cases = {"runs": "runs: inside the project's runs/ folder, which the site must not write into",
             "runs/pages": "runs/pages: inside the project's runs/ folder",
             "plans": "plans: inside the project's plans/ folder",
             ".": "the project's own folder (or one above it)",
             "..": "the project's own folder (or one above it)",
             "afile": "afile: not a folder (give a folder for the site, e.g. --out site)",
             "dangling": "dangling: a symlink to nowhere, which does not exist"}
    for out, message in cases.items():
        done = cli(frozen_project, "site", "--out", out)
        assert done.returncode == 1 and message in done.stderr and "Traceback" not in done.stderr, (out, done.stderr)
    assert not (frozen_project.root / "runs" / "index.html").exists() and not (frozen_project.root / "index.html").exists()
    assert cli(frozen_project, "verify").returncode == 0
    assert cli(frozen_project, "site", "--out", "site").returncode == 0  # beside the project's folders: fine


def test_a_run_that_does_not_verify_is_flagged_at_the_top_of_its_page_on_the_index_and_its_plan_page(
        frozen_project, tmp_path):
    """An edited report used to be shown as the run's result, its failed check only at the bottom of its page."""
    import os
    import shutil

    edited, removed = run(frozen_project), run(frozen_project)
    out = tmp_path / "site"
    build_site(frozen_project, out)
    assert "does not verify" not in (out / "index.html").read_text() + (out / "plans/example.html").read_text()
    report = edited.folder / "report.html"
    report.chmod(0o644)
    report.write_text(report.read_text().replace("</body>", "<p>edited after publishing</p></body>"))
    for _ in range(2):  # the second build renders nothing: the flags come from its manifest
        build_site(frozen_project, out)
        page = (out / "runs" / f"{edited.record.run_id}.html").read_text()
        alert = page.find("This run does not verify")
        assert 0 < alert < page.find("All plans and runs") + 600 and alert < page.find("<h1"), page[:3000]
        assert "report.html" in page[alert:page.find("</section>", alert)]
        index, plan = (out / "index.html").read_text(), (out / "plans/example.html").read_text()
        listed = index[index.find("Runs that do not verify"):]
        assert f'<a href="runs/{edited.record.run_id}.html">{edited.record.run_id}</a>: ' in listed
        for table in (index[index.find('<table id="runs">'):], plan[plan.find("Runs, oldest first"):]):
            assert f'{edited.record.run_id}.html">{edited.record.run_id}</a> <strong class="ib-not-verified">' in table
            assert f'{removed.record.run_id}</a></td>' in table
    assert "ib-not-verified" not in (out / "runs" / f"{removed.record.run_id}.html").read_text()
    for folder, _, _ in os.walk(removed.folder):  # published runs are read-only
        os.chmod(folder, 0o755)
    shutil.rmtree(removed.folder)
    index = (build_site(frozen_project, out).out / "index.html").read_text()
    assert f"{removed.record.run_id}: the ledger records this run, but it is not in the run store" in index


def test_a_full_build_removes_the_page_of_a_run_no_longer_in_the_project(frozen_project, tmp_path):
    import os
    import shutil

    kept, removed = run(frozen_project), run(frozen_project)
    out = tmp_path / "site"
    build_site(frozen_project, out)
    for folder, _, files in os.walk(removed.folder):  # published runs are read-only
        os.chmod(folder, 0o755)
    shutil.rmtree(removed.folder)
    build_site(frozen_project, out, full=True)  # a build that starts without the last manifest
    pages_now = {p.name for p in (out / "runs").glob("*.html")}
    assert pages_now == {f"{kept.record.run_id}.html"}


def test_symlinks_planted_in_the_site_folder_are_replaced_or_refused_never_written_through(frozen_project, tmp_path):
    """Anyone who can write into a shared site folder could point its pages at the building user's files."""
    import os

    first = run(frozen_project).record.run_id
    out, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    build_site(frozen_project, out)
    second = run(frozen_project).record.run_id
    elsewhere.mkdir()
    planted = {name: out / name for name in ("index.html", ".site-manifest.json", ".site-effects.json",
                                             f"runs/{second}.html", "plans/example.html",
                                             f".index.html.{os.getpid()}.tmp")}
    victims = {}
    for name, path in planted.items():  # each a copy of what is there (so the build stays incremental)
        victim = elsewhere / name.replace("/", "_")
        victim.write_bytes(path.read_bytes() if path.exists() else b"the user's own file")
        path.unlink(missing_ok=True)
        path.symlink_to(victim)
        victims[victim] = victim.read_bytes()
    summary = build_site(frozen_project, out)
    assert summary.rendered == 1 and summary.runs == 2
    assert {victim: victim.read_bytes() for victim in victims} == victims, "a page was written through a symlink"
    for name in ("index.html", ".site-manifest.json", ".site-effects.json", f"runs/{second}.html"):
        assert not planted[name].is_symlink() and planted[name].is_file(), name
    assert json.loads(planted[".site-effects.json"].read_text()).keys() == {first, second}
    assert "across 2 runs" in planted["plans/example.html"].read_text()
    for sub in ("plans", "runs", "compare", "assets"):
        aside = out / f"{sub}.real"
        (out / sub).rename(aside)
        (out / sub).symlink_to(elsewhere)
        done = cli(frozen_project, "site", "--out", str(out), "--full")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert f"{sub}: a symlink (to {elsewhere}); the site writes its pages only into real folders" in done.stderr
        (out / sub).unlink()
        aside.rename(out / sub)
    assert sorted(p.name for p in elsewhere.iterdir()) == sorted(v.name for v in victims)


def test_the_page_of_a_plan_whose_runs_are_all_gone_is_removed(frozen_project, tmp_path):
    import os
    import shutil

    only = run(frozen_project)
    out = tmp_path / "site"
    build_site(frozen_project, out)
    assert (out / "plans/example.html").exists()
    for folder, _, _ in os.walk(only.folder):
        os.chmod(folder, 0o755)
    shutil.rmtree(only.folder)
    assert cli(frozen_project, "site", "--out", str(out)).returncode == 0
    assert not (out / "plans/example.html").exists() and not list((out / "runs").glob("*.html"))


def test_an_edit_keeping_size_and_time_is_flagged_and_its_undoing_clears_the_flag(frozen_project, tmp_path):
    """The site fingerprints run folders by file size and time: an edit that keeps both was reported by the
    command's opening check yet not flagged on the page; undone, the flag stayed."""
    import os

    edited = run(frozen_project)
    out = tmp_path / "site"
    assert cli(frozen_project, "site", "--out", str(out)).returncode == 0
    scraps = edited.folder / "scraps.json"
    original, times = scraps.read_bytes(), (scraps.stat().st_atime_ns, scraps.stat().st_mtime_ns)
    os.chmod(edited.folder, 0o755)
    os.chmod(scraps, 0o644)
    scraps.write_bytes(original.replace(b"CONFIRMED", b"CONFIRMEX", 1))
    os.utime(scraps, ns=times)
    built = cli(frozen_project, "site", "--out", str(out))
    assert "does not match its SHA256SUMS" in built.stderr and "its ledger entry stands" in built.stderr, built.stderr
    assert "ib-not-verified" in (out / "index.html").read_text()
    scraps.write_bytes(original)
    os.utime(scraps, ns=times)
    os.chmod(scraps, 0o444)
    os.chmod(edited.folder, 0o555)
    assert cli(frozen_project, "verify").returncode == 0
    assert cli(frozen_project, "site", "--out", str(out)).returncode == 0
    assert "ib-not-verified" not in (out / "index.html").read_text()
    assert "This run does not verify" not in (out / "runs" / f"{edited.record.run_id}.html").read_text()
