// Renders the site's formulas with the KaTeX shipped in docs/assets/katex: no CDN, so
// the site works offline and from any file server.
//
// Markdown pages and docstrings: pymdownx.arithmatex (generic mode) leaves each formula
// as \( ... \) in a span.arithmatex, or \[ ... \] in a div.arithmatex.
// Notebook pages (mkdocs-jupyter): the Markdown cells keep Jupyter's $ ... $ and $$ ... $$.
// A formula KaTeX cannot parse is left as it is and reported on the console, where
// scripts/docs_browser_check.py finds it.
(function () {
  "use strict";

  const DELIMITED = /^\\[([]([\s\S]*)\\[)\]]$/;

  function renderArithmatex(root) {
    for (const element of root.querySelectorAll(".arithmatex")) {
      if (element.querySelector(".katex")) continue;
      const source = element.textContent.trim();
      const match = DELIMITED.exec(source);
      if (!match) {
        console.error(`KaTeX: no \\( \\) or \\[ \\] around ${JSON.stringify(source)}`);
        continue;
      }
      try {
        katex.render(match[1], element, { displayMode: element.tagName === "DIV", throwOnError: true });
      } catch (error) {
        console.error(`KaTeX could not render ${JSON.stringify(source)}: ${error.message}`);
      }
    }
  }

  function renderNotebookCells(root) {
    for (const cell of root.querySelectorAll(".jupyter-wrapper .jp-MarkdownCell")) {
      renderMathInElement(cell, {
        delimiters: [
          { left: "$$", right: "$$", display: true },
          { left: "$", right: "$", display: false },
          { left: "\\(", right: "\\)", display: false },
          { left: "\\[", right: "\\]", display: true },
        ],
        throwOnError: true,
        errorCallback: (message, error) => console.error(`KaTeX: ${message} ${error}`),
      });
    }
  }

  function render() {
    renderArithmatex(document.body);
    renderNotebookCells(document.body);
  }

  // Material's document$ emits on every page load, instant navigation included.
  if (typeof document$ !== "undefined") {
    document$.subscribe(render);
  } else if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", render);
  } else {
    render();
  }
})();
