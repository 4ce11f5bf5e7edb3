// schedule_link.js - the supervisor page's way to the scheduling page
// (issue 18): the link carries the page's own token, which lives in the
// fragment and so never reaches a server log or a Referer.
const link = document.getElementById('schedule-link');
if (link) link.href = `schedule.html${window.location.hash}`;
