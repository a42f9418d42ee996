// The ending pages (a link that opens nothing): the server writes times in UTC; the
// browser shows them in its own time zone, in the page's language, through Intl.
const language = document.documentElement.lang || "en";
const format = new Intl.DateTimeFormat(language, { dateStyle: "full", timeStyle: "short" });
for (const time of document.querySelectorAll("time[datetime]")) {
  const at = new Date(time.getAttribute("datetime"));
  if (!Number.isNaN(at.getTime())) time.textContent = format.format(at);
}
