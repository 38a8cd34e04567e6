// Confirmation with a <dialog> (not window.confirm): resolves true for yes, false for
// no, Escape or closing it any other way.

export function confirmWith(dialog, text) {
  const message = dialog.querySelector(".dialog-message");
  const yes = dialog.querySelector('[data-answer="yes"]');
  const no = dialog.querySelector('[data-answer="no"]');
  if (dialog.open) return Promise.resolve(false); // one question at a time
  message.textContent = text;
  return new Promise((resolve) => {
    let answer = false;
    const onYes = () => {
      answer = true;
      dialog.close();
    };
    const onNo = () => dialog.close();
    const onClose = () => {
      yes.removeEventListener("click", onYes);
      no.removeEventListener("click", onNo);
      dialog.removeEventListener("close", onClose);
      resolve(answer);
    };
    yes.addEventListener("click", onYes);
    no.addEventListener("click", onNo);
    dialog.addEventListener("close", onClose);
    dialog.showModal();
    no.focus();
  });
}
