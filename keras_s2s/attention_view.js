// keras_s2s attention view: builds each .s2s-view from the JSON block inside it.
// Text reaches the page through textContent only, never as markup; the page loads nothing.
(function () {
  "use strict";

  // matplotlib's viridis at 17 evenly spaced points: the PNG heatmaps' colours.
  var VIRIDIS = ["440154", "48186a", "472d7b", "424086", "3b528b", "33638d", "2c728e",
    "26828e", "21918c", "1fa088", "28ae80", "3fbc73", "5ec962", "84d44b", "addc30",
    "d8e219", "fde725"];
  var STOPS = VIRIDIS.map(function (hex) {
    return [0, 2, 4].map(function (at) { return parseInt(hex.substr(at, 2), 16); });
  });

  function colour(weight) {
    var position = Math.min(Math.max(weight, 0), 1) * (STOPS.length - 1);
    var low = Math.min(Math.floor(position), STOPS.length - 2), part = position - low;
    var rgb = STOPS[low].map(function (value, channel) {
      return Math.round(value + (STOPS[low + 1][channel] - value) * part);
    });
    return "rgb(" + rgb.join(", ") + ")";
  }

  // Dark text on the light (yellow-green) end of viridis, white on the dark end.
  function ink(weight) { return weight >= 0.45 ? "#000" : "#fff"; }

  function element(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function formatWeight(weight) { return weight.toFixed(2); }

  function setup(root) {
    root.setAttribute("data-ready", "");
    var data = JSON.parse(root.querySelector("script.s2s-data").textContent);
    var state = {hypothesis: 0, layer: data.layers - 1, head: "average"};
    var view = {sourceTokens: [], targetTokens: [], rows: [], columnHeads: []};

    root.appendChild(element("h2", "s2s-title", data.title));
    var controls = root.appendChild(element("div", "s2s-controls"));
    var nbest = controls.appendChild(element("fieldset", "s2s-group"));
    nbest.appendChild(element("legend", null, data.hypotheses.length > 1 ? "n-best" : "translation"));
    var list = nbest.appendChild(element("ol", "s2s-nbest"));
    var hypothesisButtons = data.hypotheses.map(function (hypothesis, index) {
      var button = list.appendChild(element("li")).appendChild(element("button"));
      button.type = "button";
      button.className = "s2s-hypothesis";
      button.appendChild(element("span", "s2s-text", (index + 1) + ". " + hypothesis.text));
      var score = hypothesis.score === null ? "" : "score " + hypothesis.score.toFixed(3);
      button.appendChild(element("span", "s2s-score", score));
      button.addEventListener("click", function () { state.hypothesis = index; render(); });
      return button;
    });

    var layerSelect = null, headSelect = null;
    if (data.layers * data.heads > 1) {
      var heads = controls.appendChild(element("fieldset", "s2s-group"));
      heads.appendChild(element("legend", null, "cross-attention"));
      layerSelect = labelled(heads, "layer", range(data.layers).map(function (layer) {
        return [String(layer), String(layer + 1)];
      }), String(state.layer));
      headSelect = labelled(heads, "head", [["average", "average"]].concat(
        range(data.heads).map(function (head) { return [String(head), String(head + 1)]; })),
        "average");
      layerSelect.addEventListener("change", function () { state.layer = Number(layerSelect.value); render(); });
      headSelect.addEventListener("change", function () {
        state.head = headSelect.value === "average" ? "average" : Number(headSelect.value);
        render();
      });
    }

    var sourceStrip = strip("source");
    var targetStrip = strip("output");
    var status = root.appendChild(element("p", "s2s-status"));
    status.setAttribute("aria-live", "polite");
    var note = root.appendChild(element("p", "s2s-note"));
    var scroll = root.appendChild(element("div", "s2s-scroll"));
    var legend = root.appendChild(element("div", "s2s-legend"));
    legend.appendChild(element("span", null, "0"));
    var bar = legend.appendChild(element("span", "s2s-bar"));
    bar.style.background = "linear-gradient(to right, " + range(11).map(function (step) {
      return colour(step / 10);
    }).join(", ") + ")";
    legend.appendChild(element("span", null, "1"));
    legend.appendChild(element("span", null, "attention weight (heatmap: output tokens down, " +
      "source tokens across)"));

    function range(count) {
      var values = [];
      for (var index = 0; index < count; index++) { values.push(index); }
      return values;
    }

    function labelled(parent, text, options, selected) {
      var label = parent.appendChild(element("label", null, text + " "));
      var select = label.appendChild(element("select"));
      options.forEach(function (option) {
        var node = select.appendChild(element("option", null, option[1]));
        node.value = option[0];
      });
      select.value = selected;
      return select;
    }

    function strip(side) {
      var row = root.appendChild(element("div", "s2s-strip"));
      row.appendChild(element("span", "s2s-side", side));
      var tokens = row.appendChild(element("div", "s2s-tokens"));
      tokens.dir = "auto";  // a right-to-left script reads right to left
      tokens.setAttribute("data-side", side);
      return tokens;
    }

    // The (t, s) weights of the chosen hypothesis, layer and head, or null.
    function weights() {
      var hypothesis = data.hypotheses[state.hypothesis];
      if (!hypothesis.heads) { return hypothesis.attention; }
      var layer = hypothesis.heads[state.layer];
      if (state.head !== "average") { return layer[state.head]; }
      return layer[0].map(function (row, i) {
        return row.map(function (_, j) {
          var sum = 0;
          layer.forEach(function (head) { sum += head[i][j]; });
          return sum / layer.length;
        });
      });
    }

    function tokenNodes(container, tokens, side) {
      container.textContent = "";
      return tokens.map(function (token, index) {
        var node = container.appendChild(element("span", "s2s-token", token));
        node.tabIndex = 0;
        node.dir = "auto";
        node.setAttribute("data-index", String(index));
        var show = function () { highlight(side, index); };
        node.addEventListener("mouseenter", show);
        node.addEventListener("focus", show);
        node.addEventListener("click", function () { node.focus(); });
        node.addEventListener("mouseleave", function () { if (document.activeElement !== node) { clear(); } });
        node.addEventListener("blur", clear);
        node.addEventListener("keydown", function (event) {
          var step = {ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1}[event.key];
          if (container.dir === "rtl" && (event.key === "ArrowRight" || event.key === "ArrowLeft")) { step = -step; }
          var next = step && container.children[index + step];
          if (next) { next.focus(); event.preventDefault(); }
        });
        return node;
      });
    }

    function paint(node, weight) {
      node.style.backgroundColor = colour(weight);
      node.style.color = ink(weight);
      node.setAttribute("data-weight", formatWeight(weight));
    }

    function unpaint(node) {
      node.style.backgroundColor = "";
      node.style.color = "";
      node.removeAttribute("data-weight");
      node.classList.remove("s2s-top", "s2s-active");
    }

    function clear() {
      view.sourceTokens.concat(view.targetTokens).forEach(unpaint);
      view.rows.concat(view.columnHeads).forEach(function (node) { node.classList.remove("s2s-active"); });
      root.querySelectorAll("td.s2s-active").forEach(function (node) { node.classList.remove("s2s-active"); });
      status.textContent = "";
    }

    // Output token i: the source tokens by row i's weights. Source token j: the output
    // tokens by column j's. The largest weights are marked s2s-top.
    function highlight(side, index) {
      var matrix = weights();
      clear();
      if (!matrix) { return; }
      var fromTarget = side === "output";
      var active = (fromTarget ? view.targetTokens : view.sourceTokens)[index];
      var others = fromTarget ? view.sourceTokens : view.targetTokens;
      var values = others.map(function (_, other) {
        return fromTarget ? matrix[index][other] : matrix[other][index];
      });
      var largest = Math.max.apply(null, values);
      others.forEach(function (node, other) {
        paint(node, values[other]);
        if (values[other] === largest) { node.classList.add("s2s-top"); }
      });
      active.classList.add("s2s-active");
      (fromTarget ? view.rows[index] : view.columnHeads[index]).classList.add("s2s-active");
      var strongest = values.indexOf(largest);
      status.textContent = (fromTarget ? "output " : "source ") + "\u201c" + active.textContent +
        "\u201d: most attention " + (fromTarget ? "to " : "from ") + "\u201c" +
        others[strongest].textContent + "\u201d (" + formatWeight(largest) + ")";
    }

    function heatmap(matrix, source, target) {
      scroll.textContent = "";
      view.rows = [];
      view.columnHeads = [];
      if (!matrix) { return; }
      var table = scroll.appendChild(element("table", "s2s-heatmap"));
      table.setAttribute("aria-label", "attention: output tokens down, source tokens across");
      var head = table.appendChild(element("thead")).appendChild(element("tr"));
      head.appendChild(element("th"));
      source.forEach(function (token) {
        var cell = head.appendChild(element("th", null, token));
        cell.scope = "col";
        view.columnHeads.push(cell);
      });
      var body = table.appendChild(element("tbody"));
      target.forEach(function (token, i) {
        var row = body.appendChild(element("tr"));
        var label = row.appendChild(element("th", null, token));
        label.scope = "row";
        view.rows.push(row);
        matrix[i].forEach(function (weight, j) {
          var cell = row.appendChild(element("td"));
          cell.style.backgroundColor = colour(weight);
          cell.title = token + " \u2190 " + source[j] + ": " + formatWeight(weight);
          cell.addEventListener("mouseenter", function () {
            highlight("output", i);
            cell.classList.add("s2s-active");
          });
          cell.addEventListener("mouseleave", clear);
        });
      });
    }

    function render() {
      var hypothesis = data.hypotheses[state.hypothesis];
      hypothesisButtons.forEach(function (button, index) {
        button.setAttribute("aria-pressed", String(index === state.hypothesis));
      });
      var hasHeads = Boolean(hypothesis.heads);
      [layerSelect, headSelect].forEach(function (select) { if (select) { select.disabled = !hasHeads; } });
      view.sourceTokens = tokenNodes(sourceStrip, data.source, "source");
      view.targetTokens = tokenNodes(targetStrip, hypothesis.target || [], "output");
      var matrix = weights();
      note.textContent = matrix ? "" : "No attention for this hypothesis: a search records the " +
        "best one's only (forced_attention, in exports made since it exists, gives every one's).";
      note.hidden = Boolean(matrix);
      heatmap(matrix, data.source, hypothesis.target || []);
      status.textContent = "";
    }

    render();
  }

  document.querySelectorAll(".s2s-view:not([data-ready])").forEach(setup);
})();
