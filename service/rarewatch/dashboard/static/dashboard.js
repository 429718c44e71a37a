// rarewatch dashboard: a little vanilla JavaScript, no build step.
// Everything it writes into the page is text (textContent, createTextNode), never HTML: titles, terms and
// errors come from news sources and rule files. A token from the sign-in form is kept in sessionStorage
// (this tab only) and sent as "Authorization: Bearer" with every fetch, pages included.
"use strict";

const TOKEN_KEY = "rarewatch.token";

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers(extra) {
  const h = Object.assign({}, extra || {});
  const t = token();
  if (t) {
    h.Authorization = "Bearer " + t;
  }
  return h;
}

// Load a page of the dashboard with the token and swap it in (a browser cannot send the header on a
// plain navigation); without a token, navigate as usual.
async function navigate(url, push) {
  if (!token()) {
    window.location.href = url;
    return;
  }
  const resp = await fetch(url, { headers: headers({ Accept: "text/html" }) });
  const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
  document.title = doc.title;
  document.body.replaceWith(document.adoptNode(doc.body));
  if (push) {
    history.pushState({}, "", url);
  }
  if (document.getElementById("login")) {
    show(document.querySelector(".signin p"), "That token was not accepted.");
  }
}

function show(element, message) {
  if (element) {
    element.textContent = message;
  }
}

async function api(method, path, body, contentType) {
  const init = { method: method, headers: headers(contentType ? { "Content-Type": contentType } : {}) };
  if (body !== undefined) {
    init.body = body;
  }
  const resp = await fetch(path, init);
  let data = null;
  try {
    data = await resp.json();
  } catch (e) {
    data = { error: resp.status + " " + resp.statusText };
  }
  if (resp.status === 401) {
    openSignin();
  }
  return { ok: resp.ok, status: resp.status, data: data };
}

function openSignin() {
  const dialog = document.getElementById("signin");
  if (dialog && !dialog.open) {
    dialog.showModal();
  }
}

function el(tag, text, attrs) {
  const node = document.createElement(tag);
  if (text !== undefined && text !== null) {
    node.textContent = text;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    node.setAttribute(k, v);
  }
  return node;
}

// --- playground: matches, the terms highlighted in the text, and why the close rules did not fire ----

// [start, end, term] of every place a term occurs (case-insensitive), overlaps resolved longest first.
function termRanges(text, terms) {
  const lower = text.toLowerCase();
  const sameLength = lower.length === text.length; // else indexes in `lower` would not fit `text`
  const found = [];
  for (const term of terms) {
    const needle = sameLength ? term.toLowerCase() : term;
    const hay = sameLength ? lower : text;
    if (!needle) {
      continue;
    }
    let at = hay.indexOf(needle);
    while (at !== -1) {
      found.push([at, at + needle.length, term]);
      at = hay.indexOf(needle, at + needle.length);
    }
  }
  found.sort((a, b) => a[0] - b[0] || b[1] - b[0] - (a[1] - a[0]));
  const kept = [];
  let end = 0;
  for (const r of found) {
    if (r[0] >= end) {
      kept.push(r);
      end = r[1];
    }
  }
  return kept;
}

function highlight(container, text, terms) {
  container.replaceChildren();
  let at = 0;
  for (const [start, end, term] of termRanges(text, terms)) {
    container.append(document.createTextNode(text.slice(at, start)));
    container.append(el("mark", text.slice(start, end), { "data-term": term }));
    at = end;
  }
  container.append(document.createTextNode(text.slice(at)));
}

async function runPlayground(form) {
  const text = form.querySelector("textarea").value;
  const error = document.getElementById("playground-error");
  show(error, "");
  const r = await api("POST", "/api/v1/match?explain=true", text, "text/plain; charset=utf-8");
  if (!r.ok) {
    show(error, r.data.error || "match failed");
    return;
  }
  const terms = r.data.matches.flatMap((m) => m.terms);
  highlight(document.getElementById("highlighted"), text, terms);
  const fired = document.getElementById("fired");
  fired.replaceChildren();
  for (const m of r.data.matches) {
    const li = el("li", null, { class: "fired", "data-rule": m.rule });
    li.append(el("strong", m.rule), document.createTextNode(" [" + m.category + "/" + m.severity + "]: "));
    li.append(el("em", m.terms.join(", ")));
    fired.append(li);
  }
  if (!r.data.matches.length) {
    fired.append(el("li", "No rule fires."));
  }
  const whyNot = document.getElementById("why-not");
  whyNot.replaceChildren();
  for (const w of r.data.why_not || []) {
    const li = el("li", null, { class: "why-not", "data-rule": w.rule });
    li.append(el("strong", w.rule), document.createTextNode(" [" + w.category + "]"));
    const reasons = el("ul");
    // The API leaves out a reason that does not apply (an empty list).
    for (const f of w.failed || []) {
      reasons.append(el("li", "did not hold: " + f));
    }
    if ((w.vetoed_by || []).length) {
      reasons.append(el("li", "vetoed by: " + w.vetoed_by.join(", ")));
    }
    if ((w.discounted || []).length) {
      reasons.append(el("li", "found but excluded or negated: " + w.discounted.join(", ")));
    }
    li.append(reasons);
    whyNot.append(li);
  }
  document.getElementById("playground-result").hidden = false;
}

// --- silences -------------------------------------------------------------------------------------------

async function addSilence(form) {
  const data = new FormData(form);
  const matchers = [];
  for (const name of ["rule", "source", "category", "material", "story"]) {
    const value = (data.get(name) || "").trim();
    if (value) {
      matchers.push({ name: name, value: value });
    }
  }
  const body = {
    matchers: matchers,
    duration: data.get("duration"),
    reason: data.get("reason"),
    author: data.get("author"),
  };
  const result = document.getElementById("silence-result");
  const r = await api("POST", "/api/v1/silences", JSON.stringify(body), "application/json");
  if (!r.ok) {
    result.className = "error";
    show(result, r.data.error || "not added");
    return;
  }
  await navigate("/silences", false);
  show(document.getElementById("silence-result"), "Added silence " + r.data.id);
}

async function expireSilence(id) {
  const r = await api("POST", "/api/v1/silences/" + encodeURIComponent(id) + "/expire", "{}", "application/json");
  if (!r.ok) {
    const result = document.getElementById("silence-result");
    result.className = "error";
    show(result, r.data.error || "not expired");
    return;
  }
  await navigate("/silences", false);
}

// --- backtest -------------------------------------------------------------------------------------------

function ruleList(rules) {
  return rules.map((r) => r.rule + (r.terms.length ? " (" + r.terms.join(", ") + ")" : "")).join("; ");
}

async function runBacktest(form) {
  const data = new FormData(form);
  const body = { rules: data.get("rules"), file: data.get("file"), since: data.get("since") };
  const error = document.getElementById("backtest-error");
  show(error, "");
  document.getElementById("backtest-result").hidden = true;
  const r = await api("POST", "/api/v1/backtest", JSON.stringify(body), "application/json");
  if (!r.ok) {
    show(error, r.data.error || "backtest failed");
    return;
  }
  const d = r.data;
  show(
    document.getElementById("backtest-summary"),
    d.items + " items replayed (" + (d.replaced ? "replacing " : "adding ") + d.file + "): " +
      d.add.length + " alerts added, " + d.remove.length + " removed, " + d.change.length +
      " with other rules, " + d.unchanged + " unchanged."
  );
  const rows = document.getElementById("backtest-rows");
  rows.replaceChildren();
  for (const c of [...d.add, ...d.remove, ...d.change]) {
    const tr = el("tr", null, { class: "change change-" + c.change, "data-id": c.id });
    tr.append(el("td", c.change), el("td", c.title), el("td", c.source));
    tr.append(el("td", ruleList(c.added)), el("td", ruleList(c.removed)));
    rows.append(tr);
  }
  document.getElementById("backtest-result").hidden = false;
}

function readUpload(input) {
  const file = input.files[0];
  if (!file) {
    return;
  }
  const reader = new FileReader();
  reader.onload = () => {
    document.getElementById("backtest-rules").value = reader.result;
    document.getElementById("backtest-file").value = file.name;
  };
  reader.readAsText(file);
}

// --- wiring (delegated, so pages swapped in by navigate() need no re-binding) ---------------------------

const SUBMITS = {
  "signin-form": async (form) => {
    sessionStorage.setItem(TOKEN_KEY, new FormData(form).get("token"));
    const dialog = document.getElementById("signin");
    if (dialog && dialog.open) {
      dialog.close();
    }
    await navigate(window.location.pathname + window.location.search, false);
  },
  "silence-form": addSilence,
  "playground-form": runPlayground,
  "backtest-form": runBacktest,
};

document.addEventListener("submit", (event) => {
  const form = event.target;
  const handler = SUBMITS[form.id];
  if (handler) {
    event.preventDefault();
    handler(form);
    return;
  }
  if (form.method === "get" && token()) {
    event.preventDefault();
    const query = new URLSearchParams(new FormData(form)).toString();
    navigate(form.getAttribute("action") + "?" + query, true);
  }
});

document.addEventListener("click", (event) => {
  const target = event.target;
  if (!(target instanceof Element)) {
    return;
  }
  if (target.id === "signin-link") {
    event.preventDefault();
    openSignin();
  } else if (target.id === "signout") {
    sessionStorage.removeItem(TOKEN_KEY);
    window.location.reload();
  } else if (target.matches("button.expire")) {
    expireSilence(target.dataset.id);
  } else if (token() && target.closest("a[href^='/']")) {
    event.preventDefault();
    navigate(target.closest("a").getAttribute("href"), true);
  }
});

document.addEventListener("change", (event) => {
  if (event.target.id === "backtest-upload") {
    readUpload(event.target);
  }
});

window.addEventListener("popstate", () => navigate(window.location.href, false));

document.addEventListener("DOMContentLoaded", () => {
  // Signed in earlier in this tab, but the server sent the sign-in page: load the page with the token.
  if (token() && document.getElementById("login")) {
    navigate(window.location.pathname + window.location.search, false);
  }
});
