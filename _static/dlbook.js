/* dlbook's additions to the theme. Jupyter Book adds every .js file in _static/. */
"use strict";

/* Display equations: scale one that is wider than the column by up to 20% (like LaTeX's
   \resizebox); what is still too wide scrolls in its own box (class dlbook-scrolls). */
const DLBOOK_MIN_SCALE = 0.8;

function dlbookFitEquations() {
  for (const box of document.querySelectorAll('mjx-container[display="true"]')) {
    box.style.fontSize = "";
    box.classList.remove("dlbook-scrolls");
    const room = box.clientWidth, need = box.scrollWidth;
    if (room === 0 || need <= room + 1) continue;
    const scale = Math.max(DLBOOK_MIN_SCALE, (room - 2) / need);
    box.style.fontSize = `${Math.floor(scale * 1000) / 10}%`;
    if (box.scrollWidth > box.clientWidth + 1) box.classList.add("dlbook-scrolls");
  }
  document.documentElement.dataset.dlbookMath = "fitted";  // for the browser tests
}

function dlbookWhenMathIsReady() {
  const startup = window.MathJax && window.MathJax.startup;
  if (startup && startup.promise) {
    startup.promise.then(dlbookFitEquations);
  } else if (document.querySelector("div.math, span.math")) {
    setTimeout(dlbookWhenMathIsReady, 100);
  } else {
    document.documentElement.dataset.dlbookMath = "none";
  }
}

let dlbookResizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(dlbookResizeTimer);
  dlbookResizeTimer = setTimeout(dlbookFitEquations, 150);
});
window.addEventListener("load", dlbookWhenMathIsReady);
window.addEventListener("beforeprint", dlbookFitEquations);

/* Search results: summarise a page from its article's prose, not from the buttons, the
   title and the "Contents" box above it ("...f 6. Attention and the Transformer Contents..."). */
function dlbookArticleText(htmlString, anchor) {
  const page = new DOMParser().parseFromString(htmlString, "text/html");
  const drop = [".headerlink", "script", "style", ".bd-header-article", ".bd-sidebar-secondary",
                ".onlyprint", "h1", "nav", ".toctree-wrapper", ".cell_input", ".cell_output"];
  for (const query of drop) page.querySelectorAll(query).forEach((el) => el.remove());
  const main = page.querySelector("article.bd-article") || page.querySelector('[role="main"]');
  if (!main) return "";
  const part = anchor ? main.querySelector(anchor) : null;
  return (part || main).textContent.replace(/\s+/g, " ").trim();
}

document.addEventListener("DOMContentLoaded", () => {
  if (typeof Search !== "undefined" && Search.htmlToText) Search.htmlToText = dlbookArticleText;
});
