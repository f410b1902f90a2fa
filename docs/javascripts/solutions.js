// Notebook pages: each exercise's solution code cell (tagged "solution" in its .ipynb) is
// closed in a <details> until the learner opens it, output included, so that "predict first"
// holds on the site too. mkdocs-jupyter renders every cell open (it ignores Jupyter's
// source_hidden); nbconvert marks a tagged cell with the class celltag_<tag>, on two nested
// divs: the outer one is wrapped. scripts/docs_browser_check.py checks that no solution code
// is visible on first view.
(function () {
  "use strict";

  function closeSolutions() {
    for (const cell of document.querySelectorAll(".jupyter-wrapper .celltag_solution")) {
      if (cell.parentElement.closest(".celltag_solution, details.kd-solution")) continue;
      const details = document.createElement("details");
      details.className = "kd-solution";
      const summary = document.createElement("summary");
      summary.textContent = "Solution code and its output (open it after you have tried)";
      details.appendChild(summary);
      cell.parentNode.insertBefore(details, cell);
      details.appendChild(cell);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", closeSolutions);
  } else {
    closeSolutions();
  }
})();
