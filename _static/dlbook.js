// The book's fixes to the theme's markup, in the reader's browser (Jupyter Book adds every .js
// file in _static/ to each page).
(function () {
  "use strict";

  // An element's accessible name must contain its visible text (WCAG 2.5.3, "label in name"). The
  // theme's search and colour-mode buttons and myst-nb's "Show code cell source" toggles carry an
  // aria-label that does not: let the visible text name them.
  function nameByVisibleText(root) {
    root.querySelectorAll("[aria-label]").forEach(function (el) {
      // a form control's text is its options or value, not its name: keep its label
      if (el.matches("select, input, textarea")) return;
      var text = (el.innerText || "").replace(/\s+/g, " ").trim();
      var label = el.getAttribute("aria-label") || "";
      if (text && label.toLowerCase().indexOf(text.toLowerCase()) === -1) {
        el.setAttribute("aria-label", text);
      }
    });
  }

  // Search results quote the page source, so maths shows as raw TeX ("\(X\) of \(B\)"): keep
  // the formula's text, drop its delimiters.
  function plainMathInSnippets(root) {
    root.querySelectorAll("p.context, .search-summary").forEach(function (p) {
      if (p.dataset.dlbookPlain) return;
      p.textContent = p.textContent.replace(/\\[()[\]]/g, "").replace(/\$\$?/g, "");
      p.dataset.dlbookPlain = "1";
    });
  }

  // Each chapter has a static slide deck (tools/build_slides.py): a button beside the theme's own
  // opens it. The deck needs no Jupyter, works offline, and its plots respond as here.
  function addDeckButton() {
    var match = window.location.pathname.match(/\/chapters\/(\d\d_[\w-]+)\.html$/);
    var bar = document.querySelector(".article-header-buttons");
    if (!match || !bar || bar.querySelector(".dlbook-deck-button")) return;
    var link = document.createElement("a");
    link.href = "../slides/" + match[1] + ".html";
    link.className = "btn btn-sm dlbook-deck-button";
    link.title = "Slides of this chapter";
    link.setAttribute("aria-label", "Slides");
    link.innerHTML = '<i class="fa-solid fa-person-chalkboard" aria-hidden="true"></i>' +
      '<span class="dlbook-deck-label"> Slides</span>';
    bar.insertBefore(link, bar.firstChild);
  }

  // Each chapter has a student edition (tools/student_edition.py): the notebook with the
  // exercise solutions replaced by a cell for the answer and a check that gives feedback.
  function addStudentEditionButton() {
    var match = window.location.pathname.match(/\/chapters\/(\d\d_[\w-]+)\.html$/);
    var bar = document.querySelector(".article-header-buttons");
    if (!match || !bar || bar.querySelector(".dlbook-student-button")) return;
    var link = document.createElement("a");
    link.href = "../student/" + match[1] + ".ipynb";
    link.setAttribute("download", match[1] + "_student.ipynb");
    link.className = "btn btn-sm dlbook-deck-button dlbook-student-button";
    link.title = "Student edition of this chapter: exercises to solve, with checks (.ipynb)";
    link.setAttribute("aria-label", "Student edition");
    link.innerHTML = '<i class="fa-solid fa-download" aria-hidden="true"></i>' +
      '<span class="dlbook-deck-label"> Student edition</span>';
    var deck = bar.querySelector(".dlbook-deck-button");
    bar.insertBefore(link, deck ? deck.nextSibling : bar.firstChild);
  }

  // Phones: figures fit the column, so their text is small; a tap opens the figure at its drawn
  // size in a view that scrolls and pinch-zooms (Close, Escape or a tap outside it closes it).
  var PHONE = window.matchMedia("(max-width: 600px)");

  function openZoom(img) {
    var view = document.createElement("div");
    view.className = "dlbook-zoom";
    view.setAttribute("role", "dialog");
    view.setAttribute("aria-modal", "true");
    view.setAttribute("aria-label", "Figure, full size");
    var big = document.createElement("img");
    big.src = img.src;
    big.alt = img.alt;
    var close = document.createElement("button");
    close.type = "button";
    close.className = "btn btn-light";
    close.textContent = "Close";
    function shut() { view.remove(); document.removeEventListener("keydown", onKey); img.focus(); }
    function onKey(e) { if (e.key === "Escape") shut(); }
    close.addEventListener("click", shut);
    view.addEventListener("click", function (e) { if (e.target === view) shut(); });
    document.addEventListener("keydown", onKey);
    view.appendChild(close);
    view.appendChild(big);
    document.body.appendChild(view);
    close.focus();
  }

  function zoomableFigures(root) {
    root.querySelectorAll("img.dlbook-figure").forEach(function (img) {
      if (img.dataset.dlbookZoom) return;
      img.dataset.dlbookZoom = "1";
      img.addEventListener("click", function () { if (PHONE.matches) openZoom(img); });
      var hint = document.createElement("span");
      hint.className = "dlbook-zoom-hint";
      hint.textContent = "Tap the figure to see it full size.";
      img.insertAdjacentElement("afterend", hint);
    });
  }

  // Formulas are not Tab stops (MathJax's inTabOrder is off), except a display formula too wide
  // for its column: it scrolls sideways, and a keyboard reader must be able to reach and scroll
  // it (WCAG 2.1.1; axe "scrollable-region-focusable").
  function focusableWhenScrolling(root) {
    root.querySelectorAll("mjx-container, div.math").forEach(function (el) {
      var scrolls = el.scrollWidth > el.clientWidth + 1;
      if (scrolls && el.getAttribute("tabindex") !== "0") {
        el.setAttribute("tabindex", "0");
        if (!el.hasAttribute("aria-label") && el.tagName === "DIV") {
          el.setAttribute("aria-label", "wide formula, scrolls sideways");
        }
      } else if (!scrolls && el.getAttribute("tabindex") === "0") {
        el.setAttribute("tabindex", "-1");
      }
    });
  }

  // Result snippets quote the page's text: leave out code cells, printed outputs and maths,
  // as the index does (_ext/dlbook_site.py), so a snippet shows the prose that matched.
  function proseOnlySnippets() {
    if (!window.Search || !Search.htmlToText || Search.htmlToText.dlbookProse) return;
    var toText = Search.htmlToText;
    Search.htmlToText = function (htmlString, anchor) {
      var doc = new DOMParser().parseFromString(htmlString, "text/html");
      doc.querySelectorAll("div.highlight, pre, .cell_output, .math, mjx-container, " +
                           "figure.dlbook-interactive").forEach(function (el) { el.remove(); });
      return toText(doc.documentElement.outerHTML, anchor);
    };
    Search.htmlToText.dlbookProse = true;
  }
  proseOnlySnippets();

  function ready() {
    proseOnlySnippets();
    addDeckButton();
    addStudentEditionButton();
    zoomableFigures(document);
    nameByVisibleText(document);
    focusableWhenScrolling(document);
    window.addEventListener("resize", function () { focusableWhenScrolling(document); });
    // Toggles change their text when opened; the theme adds buttons late.
    document.addEventListener("click", function () {
      setTimeout(function () { nameByVisibleText(document); }, 0);
    }, true);
    new MutationObserver(function () {
      nameByVisibleText(document);
      focusableWhenScrolling(document);
    }).observe(document.body, { childList: true, subtree: true });
    var results = document.getElementById("search-results");
    if (results) {
      plainMathInSnippets(results);
      new MutationObserver(function () { plainMathInSnippets(results); })
        .observe(results, { childList: true, subtree: true });
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
