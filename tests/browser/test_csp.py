"""The pages work under the Content-Security-Policy: no script, style or form they use is refused.

Chromium reports each refusal twice, as a console error and as a ``securitypolicyviolation``
event; both are collected, on every page the annotator and the researcher go through.
"""

import pytest
from django.urls import reverse

from tests.annotation.factories import campaign, explained_runs
from tests.annotation.test_reports import judged, rated
from tests.browser.conftest import log_in
from tests.factories import UserFactory
from xrec_site.roles import RESEARCHER

pytestmark = pytest.mark.browser

COLLECT_VIOLATIONS = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push(`${event.violatedDirective} ${event.blockedURI}`);
});
"""


class Violations:
    """Every CSP refusal the page reports, across navigations."""

    def __init__(self, page) -> None:
        self.page = page
        self.found: list[str] = []
        page.add_init_script(COLLECT_VIOLATIONS)
        page.on("console", self._console)

    def _console(self, message) -> None:
        if "Content Security Policy" in message.text:
            self.found.append(message.text)

    def of_this_page(self) -> list[str]:
        return self.found + self.page.evaluate("window.__cspViolations")


def _policy(response) -> str:
    return response.headers["content-security-policy"]


def test_the_collector_sees_a_refused_inline_style(page, live_server) -> None:
    violations = Violations(page)
    response = page.goto(f"{live_server.url}/accounts/login/")
    assert "style-src 'self'" in _policy(response)

    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<p style=\"color: red\">x</p>')")
    page.wait_for_function("window.__cspViolations.length > 0")

    assert any("style-src" in violation for violation in violations.of_this_page())


def test_an_annotator_rates_through_htmx_swaps_to_the_end_with_nothing_refused(page, live_server) -> None:
    study = campaign(runs=explained_runs(n_users=4), items_per_annotator=3, overlap=1)
    n_criteria = study.criteria.count()
    violations = Violations(page)

    response = page.goto(f"{live_server.url}/c/{study.public_token}/?PROLIFIC_PID=csp-worker&STUDY_ID=s&SESSION_ID=t")
    assert "script-src 'self'" in _policy(response)
    for _ in range(2):
        page.locator("#task fieldset.criterion.current").wait_for()  # annotate.js ran
        before = page.locator("#task").get_attribute("data-assignment")
        for _ in range(n_criteria):
            page.keyboard.press("4")
        page.keyboard.press("Enter")  # htmx posts and swaps the next item in
        page.locator(f"#task:not([data-assignment='{before}']) fieldset.current").wait_for()
        assert violations.of_this_page() == []
    for _ in range(n_criteria):
        page.keyboard.press("4")
    # The last submit sends the worker on to Prolific with the completion code (no internet here:
    # the request is what is checked), through the done page's redirect.
    with page.expect_request(lambda request: request.url.startswith("https://app.prolific.com/")):
        page.keyboard.press("Enter")

    assert violations.found == []


def test_a_researcher_reads_the_study_report_and_a_dataset_page_with_nothing_refused(page, live_server) -> None:
    UserFactory(username="res", role=RESEARCHER)
    runs = explained_runs(n_users=4, n_runs=2)
    judged(runs)
    rated(runs)
    violations = Violations(page)

    log_in(page, live_server, "res")
    page.goto(live_server.url + reverse("annotation:study"))
    page.get_by_label("Recommender run").select_option(str(runs[0].recommender_run_id))
    page.get_by_label("Generation runs").select_option([str(run.pk) for run in runs])
    page.get_by_role("button", name="Show the report").click()
    page.wait_for_url(f"**/studies/?*runs={runs[1].pk}*")
    assert page.locator("svg.chart").count() > 0
    assert violations.of_this_page() == []

    # Histogram bars (SVG rects, no style attribute) on the dataset's page.
    page.goto(live_server.url + reverse("recommendations:dataset_detail", args=[runs[0].recommender_run.dataset_id]))
    assert page.locator(".bars svg.bar rect").count() > 0

    assert violations.of_this_page() == []


def test_a_worker_without_javascript_is_still_sent_on_to_the_completion_url(browser, live_server) -> None:
    # Without htmx the last answer is a plain form POST whose redirects end at Prolific, and
    # Chromium holds a form's redirects to form-action: with 'self' alone this request is refused
    # ("Sending form data to ... violates ... form-action 'self'") and the worker never gets paid.
    study = campaign(runs=explained_runs(n_users=4), items_per_annotator=1, overlap=1)
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    page.set_default_timeout(20_000)
    refusals: list[str] = []
    page.on("console", lambda message: refusals.extend([message.text] * ("Content Security Policy" in message.text)))
    try:
        page.goto(f"{live_server.url}/c/{study.public_token}/?PROLIFIC_PID=no-js-worker&STUDY_ID=s&SESSION_ID=t")
        for fieldset in page.locator("fieldset.criterion").all():
            fieldset.locator("input[type=radio]").first.check()
        with page.expect_request(lambda request: request.url.startswith("https://app.prolific.com/")) as completion:
            page.get_by_role("button", name="Submit and next").click()

        assert completion.value.url.endswith(f"cc={study.completion_code}")
        assert refusals == []
    finally:
        context.close()


def test_the_api_docs_render_every_operation_with_nothing_refused(page, live_server) -> None:
    from django.urls import NoReverseMatch

    try:
        docs = reverse("api_docs")
    except NoReverseMatch:
        pytest.skip("no API docs page in this checkout (drf-spectacular's Swagger UI at /api/docs/)")
    UserFactory(username="res", role=RESEARCHER)
    violations = Violations(page)

    log_in(page, live_server, "res")
    page.goto(live_server.url + docs)
    # Swagger UI builds the page from the schema in script: operations shown means it ran.
    page.locator(".opblock").first.wait_for()
    page.locator(".opblock-summary").first.click()  # an operation opened draws its icons too
    page.locator(".opblock-body").first.wait_for()

    assert violations.of_this_page() == []
