// cleanroom web UI: the only script. Everything works without it; it only
// saves typing: a table or column name clicked in the console goes into the
// SQL editor at the cursor.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const editor = document.getElementById("sql");
  if (!editor) {
    return;
  }
  for (const button of document.querySelectorAll("button.insert[data-insert]")) {
    button.addEventListener("click", (event) => {
      event.preventDefault();
      const text = button.dataset.insert;
      const start = editor.selectionStart ?? editor.value.length;
      const end = editor.selectionEnd ?? editor.value.length;
      editor.value = editor.value.slice(0, start) + text + editor.value.slice(end);
      editor.focus();
      editor.selectionStart = editor.selectionEnd = start + text.length;
    });
  }
});
