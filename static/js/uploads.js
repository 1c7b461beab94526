// Upload with a progress bar through the REST API; without JavaScript the form posts normally.
(function () {
  "use strict";
  const form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) return;
  const input = document.getElementById("id_file");
  const zone = document.getElementById("drop-zone");
  const bar = document.getElementById("upload-progress");
  const status = document.getElementById("upload-status");
  const fileName = document.getElementById("file-name");

  function showName() { fileName.textContent = input.files.length ? input.files[0].name : ""; }
  input.addEventListener("change", showName);
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.add("dragging"); });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function (event) { event.preventDefault(); zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    if (event.dataTransfer.files.length) { input.files = event.dataTransfer.files; showName(); }
  });

  form.addEventListener("submit", function (event) {
    if (!input.files.length) return;
    event.preventDefault();
    const data = new FormData(form);
    const request = new XMLHttpRequest();
    request.open("POST", form.dataset.apiUrl);
    request.setRequestHeader("X-CSRFToken", form.querySelector("[name=csrfmiddlewaretoken]").value);
    bar.hidden = false;
    bar.value = 0;
    status.textContent = "Uploading…";
    request.upload.addEventListener("progress", function (e) {
      if (e.lengthComputable) {
        bar.value = Math.round((e.loaded / e.total) * 100);
        status.textContent = "Uploading… " + bar.value + "%";
      }
    });
    request.addEventListener("load", function () {
      let body = {};
      try { body = JSON.parse(request.responseText); } catch (err) { body = {}; }
      if (request.status === 202) {
        status.textContent = "Uploaded; processing has started.";
        window.location.href = "/uploads/" + body.task_id;
      } else {
        bar.hidden = true;
        status.textContent = (body.detail || "The upload failed (HTTP " + request.status + ").");
        status.className = "error";
      }
    });
    request.addEventListener("error", function () {
      bar.hidden = true;
      status.textContent = "The upload was interrupted. Check the connection and try again.";
      status.className = "error";
    });
    request.send(data);
  });
})();
