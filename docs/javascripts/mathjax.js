// MathJax 3 settings for the formulas pymdownx.arithmatex marks (generic mode):
// \( ... \) inline and \[ ... \] displayed, only inside elements of class "arithmatex".
window.MathJax = {
  tex: {
    inlineMath: [["\\(", "\\)"]],
    displayMath: [["\\[", "\\]"]],
    processEscapes: true,
    processEnvironments: true,
  },
  options: {
    ignoreHtmlClass: ".*|",
    processHtmlClass: "arithmatex",
  },
};

// document$ (mkdocs-material) emits for every page shown, also when instant navigation
// swaps pages without a reload: typeset each one.
document$.subscribe(() => {
  MathJax.startup.output.clearCache();
  MathJax.typesetClear();
  MathJax.texReset();
  MathJax.typesetPromise();
});
