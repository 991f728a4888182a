"""The pipeline_validation template runs under Papermill in a fresh kernel (a temp folder, the shipped
example's generator as its data) and glues every scrap its output contract declares, with the standard
`results` and `verdicts` valid for the example's checks; the example's breaching perturbation is REFUTED."""

from pathlib import Path

import papermill

from impactbook.capture import read_scraps
from impactbook.designs.pipeline_validation.harness import preregistered_checks
from impactbook.designs.pipeline_validation.parameters import design_parameter
from impactbook.results import result_problems
from impactbook.template import output_contract, read_template

SCAFFOLD = Path(__file__).parents[3] / "src/impactbook/scaffold"
JSON_TYPES = {"array": list, "object": dict}


def test_template_runs_under_papermill_and_fulfils_its_contract(tmp_path):
    template = SCAFFOLD / "pipeline_validation.ipynb"
    plan = str(SCAFFOLD / "pipeline_validation.yaml")
    out = tmp_path / "out.ipynb"
    papermill.execute_notebook(str(template), str(out), parameters={"source": "example", "plan": plan},
                               cwd=str(tmp_path), kernel_name="python3", progress_bar=False)
    scraps = read_scraps(out)
    contract = output_contract(read_template(template))
    assert {name: type(scraps[name]) for name in contract} == {name: JSON_TYPES[kind] for name, kind in contract.items()}
    ids = preregistered_checks(design_parameter(plan))
    assert result_problems(scraps, ids, ids) == [] and set(scraps["verdicts"]) == set(ids)
    assert scraps["verdicts"]["perturbation.price_ranking_swap"] == "REFUTED"
    assert scraps["verdicts"]["perturbation.distance_out_of_range"] == "CONFIRMED"
