// The sandbox chat client: state from /sandbox/api, live updates over SSE.
"use strict";

(function () {
  const SB = window.SB;
  const { esc } = SB;
  const $ = (id) => document.getElementById(id);
  const S = { user: localStorage.getItem("sandbox.user") || "U0ALICE", channel: "C0GENERAL", thread: null, modal: null, state: null, home: false };

  async function api(path, body) {
    const opts = body === undefined ? {} : { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) };
    const resp = await fetch(path, opts);
    const data = await resp.json().catch(() => ({}));
    if (!resp.ok) throw new Error(data.error || `HTTP ${resp.status}`);
    return data;
  }

  function toast(text, kind) {
    const el = document.createElement("div");
    el.className = `toast ${kind || ""}`;
    el.dataset.testid = "toast";
    el.textContent = text;
    $("toasts").appendChild(el);
    setTimeout(() => el.remove(), 6000);
  }

  // ----- state, sidebar, user picker -----------------------------------

  async function loadState() {
    S.state = await api(`/sandbox/api/state?user=${encodeURIComponent(S.user)}`);
    SB.users = Object.fromEntries(S.state.users.map((u) => [u.id, u]));
    SB.channels = Object.fromEntries(S.state.channels.map((c) => [c.id, c]));
    if (!SB.channels[S.channel] && !S.channel.startsWith("D")) S.channel = "C0GENERAL";
    renderPicker();
    renderSidebar();
  }

  function renderPicker() {
    const picker = $("user-picker");
    picker.innerHTML = S.state.users.filter((u) => !u.is_bot).map((u) => {
      const note = u.approver ? "approver" : "not an approver in the demo";
      return `<option value="${esc(u.id)}" data-testid="user-option-${esc(u.name)}"${u.id === S.user ? " selected" : ""}>${esc(u.name)} (${note})</option>`;
    }).join("");
  }

  function renderSidebar() {
    const item = (c, label, testid) => `<li><a href="#" class="chan${c === S.channel ? " active" : ""}" data-testid="${testid}" data-channel-id="${esc(c)}">${label}</a></li>`;
    const pub = S.state.channels.filter((c) => !c.is_im);
    $("channel-list").innerHTML = pub.map((c) => item(c.id, `# ${esc(c.name)}`, `channel-${esc(c.name)}`)).join("");
    const dm = S.state.channels.find((c) => c.is_im);
    $("dm-list").innerHTML = item(dm ? dm.id : "", '<span class="presence"></span>approvals <span class="app-tag">APP</span>', "dm-bot");
    $("app-list").innerHTML = `<li><a href="#" class="chan${S.home ? " active" : ""}" data-testid="home-bot" data-home="1">🏠 approvals · Home</a></li>`;
  }

  // ----- App Home -------------------------------------------------------

  function showPane(home) {
    S.home = home;
    $("home-pane").classList.toggle("hidden", !home);
    $("channel-pane").classList.toggle("hidden", home);
  }

  // Opening the tab is what makes Slack send app_home_opened; the app answers with views.publish.
  async function openHome() {
    closeThread();
    showPane(true);
    renderSidebar();
    $("home-view").innerHTML = '<div class="home-empty" data-testid="home-loading">Loading…</div>';
    try {
      await api("/sandbox/api/home", { user: S.user });
    } catch (err) {
      toast(`Could not open Home: ${err.message}`, "error");
    }
    await refreshHome(false);
  }

  async function refreshHome(published) {
    if (!S.home) return;
    const data = await api(`/sandbox/api/views/${encodeURIComponent(S.user)}`);
    if (data.home) {
      $("home-view").innerHTML = SB.renderBlocks(data.home.blocks);
      $("home-view").dataset.viewId = data.home.id;
      $("home-view").dataset.hash = data.home.hash;
    } else if (published !== false) {
      $("home-view").innerHTML = '<div class="home-empty">This app has not published a Home for you.</div>';
    }
  }

  async function selectChannel(id) {
    if (!id) id = (await api("/sandbox/api/dms", { user: S.user })).channel;
    S.channel = id;
    showPane(false);
    closeThread();
    await loadState();
    const c = SB.channels[id];
    $("channel-title").textContent = c ? (c.is_im ? "approvals" : `# ${c.name}`) : id;
    $("channel-title").dataset.channelId = id;
    $("channel-topic").textContent = c && c.topic ? SB.unent(c.topic.value) : "";  // Slack text, entities encoded
    $("messages").innerHTML = "";
    await refreshMessages();
  }

  // ----- messages -------------------------------------------------------

  function timeOf(ts) {
    return new Date(parseFloat(ts) * 1000).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  }

  function reactionsHtml(m) {
    return (m.reactions || []).map((r) => `<span class="reaction" data-testid="reaction" data-name="${esc(r.name)}" title=":${esc(r.name)}: by ${esc(r.users.map(SB.userName).join(", "))}">${esc(SB.emojiName(r.name))} <span class="count">${r.count}</span></span>`).join("");
  }

  function messageHtml(m, inThread) {
    const author = SB.users[m.user];
    const name = author ? author.real_name || author.name : m.user;
    const isBot = Boolean(m.bot_id);
    const cursor = m.streaming ? '<span class="stream-cursor" data-testid="streaming">▍</span>' : "";
    const body = isBot && m.blocks && m.blocks.length ? SB.renderBlocks(m.blocks) : `<div class="mtext">${SB.mrkdwn(m.text)}${cursor}</div>`;
    const eph = m.is_ephemeral ? '<div class="eph-note" data-testid="ephemeral-note">👁 Only visible to you</div>' : "";
    const edited = m.edited ? ' <span class="edited" data-testid="edited">(edited)</span>' : "";
    const replies = !inThread && m.reply_count ? `<a href="#" class="thread-link" data-testid="open-thread" data-ts="${esc(m.ts)}">${m.reply_count} ${m.reply_count === 1 ? "reply" : "replies"}</a>` : "";
    const replyBtn = !inThread && !m.is_ephemeral ? `<button class="reply-btn" data-testid="reply-in-thread" data-ts="${esc(m.ts)}" title="Reply in thread">💬</button>` : "";
    return `<div class="avatar ${isBot ? "bot" : ""}">${esc(isBot ? "🤖" : name.slice(0, 1).toUpperCase())}</div>
      <div class="mbody">
        <div class="meta"><span class="author" data-testid="message-author">${esc(isBot ? "approvals" : name)}</span>${isBot ? ' <span class="app-tag">APP</span>' : ""}
          <span class="time">${esc(timeOf(m.ts))}</span>${edited}</div>
        ${eph}<div class="content" data-testid="message-content">${body}</div>
        <div class="reactions">${reactionsHtml(m)}</div>${replies}
      </div>${replyBtn}`;
  }

  // Keyed re-render: only messages whose JSON changed are rebuilt, so a
  // browser test holding a button does not lose it to an unrelated update.
  function renderList(container, messages, inThread) {
    const atBottom = container.scrollHeight - container.scrollTop - container.clientHeight < 40;
    const old = new Map([...container.children].map((el) => [el.dataset.key, el]));
    const nodes = messages.map((m) => {
      const key = `${m.is_ephemeral ? "e" : "m"}${m.ts}`;
      const sig = JSON.stringify(m);
      let el = old.get(key);
      if (!el || el.dataset.sig !== sig) {
        el = document.createElement("div");
        el.className = `msg${m.is_ephemeral ? " ephemeral" : ""}`;
        el.dataset.testid = "message";
        el.dataset.key = key;
        el.dataset.ts = m.ts;
        el.dataset.user = m.user;
        el.dataset.channel = S.channel;
        el.dataset.ephemeral = m.is_ephemeral ? "true" : "false";
        if (m.edited) el.dataset.edited = "true";
        if (m.streaming) el.dataset.streaming = "true";
        el.dataset.sig = sig;
        el.innerHTML = messageHtml(m, inThread);
      }
      return el;
    });
    container.replaceChildren(...nodes);
    if (atBottom) container.scrollTop = container.scrollHeight;
  }

  // Live updates overlap: render only the newest request's answer, so an older, slower
  // one cannot leave stale messages on screen after the last change.
  let messagesSeq = 0;
  let threadSeq = 0;

  async function refreshMessages() {
    const seq = ++messagesSeq;
    const data = await api(`/sandbox/api/channels/${encodeURIComponent(S.channel)}/messages?user=${encodeURIComponent(S.user)}`);
    if (seq === messagesSeq && data.channel === S.channel) renderList($("messages"), data.messages, false);
  }

  async function openThread(ts) {
    S.thread = ts;
    $("thread-pane").classList.remove("hidden");
    $("thread-pane").dataset.threadTs = ts;
    $("thread-messages").innerHTML = "";
    await refreshThread();
    $("thread-input").focus();
  }

  function closeThread() {
    S.thread = null;
    $("thread-pane").classList.add("hidden");
    delete $("thread-pane").dataset.threadTs;
  }

  // The thread's status line (assistant.threads.setStatus): "approvals is working on it…";
  // without words, the agent session's state (agents.sessions.setStatus) says it in short.
  const SESSION_WORDS = { processing: "is working…", suspended: "is waiting…" };
  function renderStatus(status, session) {
    const el = $("thread-status");
    const words = status || SESSION_WORDS[session] || "";
    el.textContent = words ? `approvals ${words}` : "";
    el.dataset.session = session || "";
    el.classList.toggle("hidden", !words);
  }

  async function refreshThread() {
    if (!S.thread) return;
    const seq = ++threadSeq;
    try {
      const data = await api(`/sandbox/api/channels/${encodeURIComponent(S.channel)}/threads/${encodeURIComponent(S.thread)}?user=${encodeURIComponent(S.user)}`);
      if (seq === threadSeq) {
        renderList($("thread-messages"), data.messages, true);
        renderStatus(data.status || "", data.session || "");
      }
    } catch (err) {
      if (seq === threadSeq) closeThread();
    }
  }

  // Slack's client escapes &<>, turns @here/@channel/@everyone into <!here> ... and @name
  // into <@USERID> (sandbox/events.py wire_text does the same for tests).
  function encodeText(text) {
    let t = text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
    t = t.replace(/(^|[^\w@])@(here|channel|everyone)\b/g, "$1<!$2>");
    for (const u of Object.values(SB.users)) {
      t = t.replace(new RegExp(`@${u.name}\\b`, "g"), `<@${u.id}>`);
    }
    return t;
  }

  // "/approvals args" is a slash command, sent to the app rather than posted.
  async function command(input, text) {
    input.value = "";
    try {
      const r = await api("/sandbox/api/commands", { user: S.user, channel: S.channel, text });
      if (r.status === null || r.status >= 300) toast(`${text.split(" ")[0]} failed with the error "${r.error || "dispatch_failed"}"`, "error");
    } catch (err) {
      input.value = text;
      const msg = err.message === "invalid_command" ? `${text.split(" ")[0]} is not a valid command` : `Command failed: ${err.message}`;
      toast(msg, "error");
    }
  }

  async function send(input, threadTs) {
    const text = input.value.trim();
    if (!text) return;
    if (/^\/[a-z]/.test(text)) return command(input, text);
    input.value = "";
    try {
      await api("/sandbox/api/messages", { user: S.user, channel: S.channel, text: encodeText(text), thread_ts: threadTs || null });
    } catch (err) {
      input.value = text;
      toast(`Could not send: ${err.message}`, "error");
    }
  }

  // ----- interactivity ---------------------------------------------------

  async function act(el, value) {
    const msg = el.closest("[data-testid=message]");
    if (!msg) return toast("Buttons in modals are not supported by the sandbox yet", "error");
    el.classList.add("pending");
    try {
      const r = await api("/sandbox/api/actions", { user: S.user, channel: msg.dataset.channel, message_ts: msg.dataset.ts, action_id: el.dataset.actionId, block_id: el.dataset.blockId, value });
      if (r.status === null || r.status >= 300) toast(`⚠ The app did not respond (${r.error || r.status}). Slack would show a warning here.`, "error");
    } catch (err) {
      toast(`Action failed: ${err.message}`, "error");
    } finally {
      el.classList.remove("pending");
    }
  }

  // ----- modals -----------------------------------------------------------

  async function refreshModal() {
    const data = await api(`/sandbox/api/views/${encodeURIComponent(S.user)}`);
    const top = data.stack[data.stack.length - 1] || null;
    if (!top) return closeModalUi();
    const root = $("modal-root");
    const same = S.modal && S.modal.id === top.id && S.modal.hash === top.hash && root.firstChild;
    S.modal = top;
    if (!same) root.innerHTML = modalHtml(top);
    showModalErrors(top);
  }

  function closeModalUi() {
    S.modal = null;
    $("modal-root").innerHTML = "";
  }

  function modalHtml(v) {
    const blocks = (v.blocks || []).map(SB.renderModalBlock).join("");
    const submit = v.submit ? `<button type="submit" class="block-btn btn-primary" data-testid="modal-submit">${SB.plain(v.submit.text)}</button>` : "";
    const close = v.close ? v.close.text : "Cancel";
    return `<div class="overlay"><form class="modal" data-testid="modal" data-view-id="${esc(v.id)}" data-callback-id="${esc(v.callback_id)}">
      <div class="modal-head"><span data-testid="modal-title">${SB.plain(v.title && v.title.text)}</span>
        <button type="button" class="icon-btn" data-testid="modal-x" data-close="1">✕</button></div>
      <div class="modal-banner hidden" data-testid="modal-banner"></div>
      <div class="modal-body">${blocks}</div>
      <div class="modal-foot"><button type="button" class="block-btn" data-testid="modal-cancel" data-close="1">${SB.plain(close)}</button>${submit}</div>
    </form></div>`;
  }

  function showModalErrors(v) {
    const root = $("modal-root");
    root.querySelectorAll("[data-error-for]").forEach((el) => {
      const msg = (v._errors || {})[el.dataset.errorFor];
      el.textContent = msg || "";
      el.closest(".input-block").classList.toggle("has-error", Boolean(msg));
    });
    const banner = root.querySelector("[data-testid=modal-banner]");
    if (banner) {
      banner.textContent = v._banner ? `⚠ ${v._banner}` : "";
      banner.classList.toggle("hidden", !v._banner);
    }
  }

  async function submitModal(form) {
    const btn = form.querySelector("[data-testid=modal-submit]");
    if (btn) btn.disabled = true;
    try {
      await api(`/sandbox/api/views/${encodeURIComponent(S.user)}/submit`, { values: SB.readValues(form, S.modal) });
      await refreshModal();
    } catch (err) {
      toast(`Submit failed: ${err.message}`, "error");
    } finally {
      if (btn) btn.disabled = false;
    }
  }

  async function closeModal() {
    try {
      await api(`/sandbox/api/views/${encodeURIComponent(S.user)}/close`, {});
    } finally {
      await refreshModal();
    }
  }

  // ----- live updates -----------------------------------------------------

  function connect() {
    const es = new EventSource("/sandbox/stream");
    es.onopen = () => document.body.dataset.live = "true";
    es.onmessage = (e) => onChange(JSON.parse(e.data));
    es.onerror = () => document.body.dataset.live = "false";
  }

  function onChange(c) {
    if (c.kind === "reset") {
      closeThread();
      closeModalUi();
      return selectChannel(S.channel.startsWith("D") ? "C0GENERAL" : S.channel);
    }
    if (c.kind === "channel") return loadState();
    if (c.kind === "view" && c.user === S.user) return refreshModal();
    if (c.kind === "home" && c.user === S.user) return refreshHome(true);
    if (c.channel && c.channel === S.channel && c.kind !== "call") {
      refreshMessages();
      refreshThread();
    }
  }

  // ----- wiring -------------------------------------------------------------

  function wire() {
    $("user-picker").addEventListener("change", async (e) => {
      S.user = e.target.value;
      localStorage.setItem("sandbox.user", S.user);
      closeModalUi();
      if (S.home) {
        await loadState();
        await openHome();
      } else {
        await selectChannel(S.channel.startsWith("D") ? "" : S.channel);
      }
      await refreshModal();
    });
    document.querySelector(".sidebar").addEventListener("click", (e) => {
      if (e.target.closest("[data-home]")) {
        e.preventDefault();
        return openHome();
      }
      const a = e.target.closest("[data-channel-id]");
      if (!a) return;
      e.preventDefault();
      selectChannel(a.dataset.channelId);
    });
    for (const [form, input, thread] of [["composer", "composer-input", false], ["thread-composer", "thread-input", true]]) {
      $(form).addEventListener("submit", (e) => {
        e.preventDefault();
        send($(input), thread ? S.thread : null);
      });
      $(input).addEventListener("keydown", (e) => {
        if (e.key === "Enter" && !e.shiftKey) {
          e.preventDefault();
          send($(input), thread ? S.thread : null);
        }
      });
    }
    $("thread-close").addEventListener("click", closeThread);
    document.body.addEventListener("click", (e) => {
      const t = e.target.closest("[data-testid=open-thread], [data-testid=reply-in-thread]");
      if (t) {
        e.preventDefault();
        return openThread(t.dataset.ts);
      }
      const channelLink = e.target.closest("[data-link-channel]");
      if (channelLink) {
        e.preventDefault();
        return selectChannel(channelLink.dataset.linkChannel);
      }
      const btn = e.target.closest(".msg [data-testid=block-button]");
      if (btn) return act(btn, btn.dataset.value);
      if (e.target.closest("#modal-root [data-close]")) return closeModal();
    });
    document.body.addEventListener("change", (e) => {
      const sel = e.target.closest(".msg [data-testid=block-select]");
      if (sel && sel.value) act(sel, sel.value);
    });
    $("modal-root").addEventListener("submit", (e) => {
      e.preventDefault();
      submitModal(e.target);
    });
  }

  async function start() {
    wire();
    await loadState();
    if (!SB.users[S.user]) S.user = "U0ALICE";
    // Slack message links (/archives/...) redirect here as #channel=...&thread=...
    const link = new URLSearchParams(location.hash.slice(1));
    if (link.get("channel")) S.channel = link.get("channel");
    await selectChannel(S.channel);
    if (link.get("thread")) await openThread(link.get("thread"));
    await refreshModal();
    connect();
    document.body.dataset.ready = "true";
  }

  start().catch((err) => toast(`Failed to start: ${err.message}`, "error"));
})();
