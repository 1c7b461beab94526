// Upload with a preview and a progress bar through the REST API.
// Without JavaScript the form posts normally and problems are fixed on the task page.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  const input = document.getElementById("id_file");
  const zone = document.getElementById("drop-zone");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const fileName = document.getElementById("file-name");
  const preview = document.getElementById("preview");
  const previewMaxBytes = Number(form.dataset.previewMaxMb) * 1024 * 1024;
  // Problems a mapping can fix: only for these is the proposed mapping put in the box to edit. Any
  // other (a duplicate, mixed currencies, too many rejected rows) leaves the mapping alone: filled in,
  // it would go with every later upload from this page and override the datasource's saved mapping.
  const MAPPING_FIXES = ["missing_required_column", "invalid_mapping", "ambiguous_columns"];

  function csrfToken() { return form.querySelector("[name=csrfmiddlewaretoken]").value; }
  // A session that ended (idle timeout, logout in another tab) makes the API answer 401: go to the
  // login page, which says why, and come back here afterwards, instead of showing the API's wording.
  function loggedOut(request) {
    if (request.status !== 401) return false;
    window.location.href = form.dataset.loginUrl + "?next=" + encodeURIComponent(window.location.pathname);
    return true;
  }

  function setStatus(text, isError) {
    status.textContent = text;
    status.className = isError ? "error" : "";
  }

  function element(tag, text) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function fillTable(table, header, rows) {
    table.replaceChildren();
    const head = element("thead");
    const headRow = element("tr");
    header.forEach(function (name) { headRow.appendChild(element("th", name)); });
    head.appendChild(headRow);
    const body = element("tbody");
    rows.forEach(function (row) {
      const tr = element("tr");
      row.forEach(function (cell) { tr.appendChild(element("td", cell === null ? "" : cell)); });
      body.appendChild(tr);
    });
    table.append(head, body);
  }

  // Day first or month first: whichever of the two comes first in the format.
  function dateOrder(format) {
    const day = format.indexOf("%d"), month = Math.max(format.indexOf("%m"), format.indexOf("%b"));
    if (day < 0 || month < 0) return "";
    return day < month ? " (day first)" : " (month first)";
  }

  // A problem; ambiguous dates come with buttons that choose a format and check again.
  function problemItem(problem) {
    const item = element("li", problem.detail);
    (problem.choices || []).forEach(function (format) {
      const button = element("button", "Read dates as " + format + dateOrder(format));
      button.type = "button";
      button.className = "choice";
      button.addEventListener("click", function () {
        form.querySelector("[name=date_format]").value = format;
        runPreview();
      });
      item.appendChild(document.createTextNode(" "));
      item.appendChild(button);
    });
    return item;
  }

  function showPreview(result) {
    const parts = [result.detected_format.toUpperCase()];
    if (result.detected_encoding) parts.push("encoding " + result.detected_encoding);
    if (result.detected_delimiter) parts.push("delimiter “" + result.detected_delimiter + "”");
    if (result.decimal_comma) parts.push("decimal comma");
    if (result.detected_sheet) parts.push("sheet “" + result.detected_sheet + "”");
    if (result.detected_header_row) parts.push("header on row " + result.detected_header_row);
    if (result.date_format) parts.push("dates as " + result.date_format);
    if (result.validation) {
      parts.push(result.validation.rows_checked + " rows checked, " + result.validation.rows_rejected + " rejected");
    }
    document.getElementById("preview-summary").textContent = "Detected: " + parts.join(", ") + ".";
    const problems = document.getElementById("preview-problems");
    problems.replaceChildren();
    (result.problems || []).concat((result.schema_drift || []).concat(result.notes || []).map(function (d) { return { detail: d }; }))
      .forEach(function (problem) { problems.appendChild(problemItem(problem)); });
    const mapping = result.proposed_mapping || {};
    fillTable(document.getElementById("preview-mapping"), ["Field", "Source column"],
      Object.keys(mapping).map(function (field) { return [field, mapping[field]]; }));
    const sample = result.sample_rows || [];
    fillTable(document.getElementById("preview-sample"), result.columns || [],
      sample.slice(0, 5).map(function (row) { return (result.columns || []).map(function (c) { return row[c]; }); }));
    const found = result.problems || [];
    const rejected = result.validation ? result.validation.rows_rejected : 0;
    if (found.length) {
      form.querySelector("details").open = true;
      const textarea = form.querySelector("[name=mapping]");
      const mappingProblem = found.some(function (problem) { return MAPPING_FIXES.indexOf(problem.code) >= 0; });
      if (mappingProblem && !textarea.value && Object.keys(mapping).length) {
        const inverted = {};
        Object.keys(mapping).forEach(function (field) { inverted[mapping[field]] = field; });
        textarea.value = JSON.stringify(inverted);
      }
      setStatus("The upload would not load as it is: fix the problems above (options are under Advanced options), check again, then upload.", true);
    } else if (rejected) {
      setStatus(rejected + " of the " + result.validation.rows_checked + " rows checked will be left out " +
        "(the task's error report will say why). Press Upload to load the others.", false);
    } else {
      setStatus("Looks good. Press Upload to load it.", false);
    }
    preview.hidden = false;
  }

  function runPreview() {
    if (!input.files.length || input.files[0].size > previewMaxBytes) { preview.hidden = true; return; }
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.previewUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    setStatus("Checking the file…", false);
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (err) { body = {}; }
      if (loggedOut(request)) return;
      if (request.status === 200) { showPreview(body); }
      else { preview.hidden = true; setStatus(body.detail || "The file could not be checked.", true); }
    });
    request.send(new FormData(form));
  }

  function fileChosen() {
    fileName.textContent = input.files.length ? input.files[0].name : "";
    runPreview();
  }
  input.addEventListener("change", fileChosen);
  document.getElementById("preview-again").addEventListener("click", runPreview);
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; fileChosen(); }
  });

  form.addEventListener("submit", function (event) {
    if (!input.files.length) return;
    event.preventDefault();
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.apiUrl);
    request.setRequestHeader("X-CSRFToken", csrfToken());
    bar.hidden = false;
    bar.value = 0;
    setStatus("Uploading…", false);
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        setStatus("Uploading… " + bar.value + "%", false);
      }
    });
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (err) { body = {}; }
      if (loggedOut(request)) return;
      if (request.status === 202) {
        setStatus("Uploaded; processing has started.", false);
        window.location.href = "/uploads/" + body.task_id;
      } else {
        bar.hidden = true;
        setStatus(body.detail || "The upload failed (HTTP " + request.status + ").", true);
      }
    });
    request.addEventListener("error", function () {
      bar.hidden = true;
      setStatus("The upload was interrupted. Check the connection and try again.", true);
    });
    request.send(new FormData(form));
  });
})();
