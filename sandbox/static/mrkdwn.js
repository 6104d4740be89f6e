// Slack mrkdwn -> safe HTML. Every piece of message text goes through esc(),
// so nothing a bot or person types can inject markup.
"use strict";

const EMOJI = {
  eyes: "👀", hourglass_flowing_sand: "⏳", hourglass: "⌛", white_check_mark: "✅",
  heavy_check_mark: "✔️", x: "❌", warning: "⚠️", no_entry: "⛔", no_entry_sign: "🚫",
  thumbsup: "👍", "+1": "👍", thumbsdown: "👎", "-1": "👎", rocket: "🚀", tada: "🎉",
  memo: "📝", pencil: "📝", pencil2: "✏️", speech_balloon: "💬", robot_face: "🤖",
  lock: "🔒", key: "🔑", gear: "⚙️", wrench: "🔧", hammer_and_wrench: "🛠️", email: "📧",
  envelope: "✉️", bell: "🔔", question: "❓", exclamation: "❗", stopwatch: "⏱️",
  clock1: "🕐", zap: "⚡", fire: "🔥", heart: "❤️", smile: "😄", wave: "👋",
  large_green_circle: "🟢", red_circle: "🔴", large_yellow_circle: "🟡", arrows_counterclockwise: "🔄",
  mag: "🔍", page_facing_up: "📄", file_folder: "📁", calendar: "📅", link: "🔗",
  raised_hand: "✋", ballot_box_with_check: "☑️", alarm_clock: "⏰", grey_question: "❔",
  hourglass_done: "⌛", no_good: "🙅", lock_with_ink_pen: "🔏", electric_plug: "🔌",
  sparkles: "✨", inbox_tray: "📥", outbox_tray: "📤", clipboard: "📋", bust_in_silhouette: "👤",
  busts_in_silhouette: "👥", date: "📅", spiral_calendar_pad: "🗓️", house: "🏠",
  information_source: "ℹ️", white_circle: "⚪", black_circle: "⚫", hourglass_flowing: "⏳",
  receipt: "🧾",
};

const SB = (window.SB = window.SB || {});
SB.users = {};
SB.channels = {};

function esc(s) {
  return String(s ?? "").replace(/[&<>"']/g, (c) => ({
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
  })[c]);
}

// Slack escapes &, <, > in message text; undo that before our own escaping.
function unent(s) {
  return String(s ?? "").replace(/&lt;/g, "<").replace(/&gt;/g, ">").replace(/&amp;/g, "&");
}

function emojiName(name) {
  return EMOJI[name] || `:${name}:`;
}

function emojify(html) {
  return html.replace(/:([a-z0-9_+-]+):/g, (m, n) => (EMOJI[n] ? EMOJI[n] : m));
}

function safeUrl(url) {
  return /^(https?:|mailto:)/i.test(url) ? url : "#";
}

function userName(id) {
  const u = SB.users[id];
  return u ? u.name : id;
}

function channelName(id) {
  const c = SB.channels[id];
  return c ? c.label || c.name : id;
}

// Slack's date tokens ({date_num}, {date}, {date_short}, {date_long}, their _pretty forms,
// {time}, {time_secs}, {ago}), in the reader's own time zone; other text kept as written.
function slackDate(seconds, format) {
  const d = new Date(seconds * 1000);
  const day = (opts) => d.toLocaleDateString("en-US", opts);
  const two = (n) => String(n).padStart(2, "0");
  const pretty = (plainForm) => {
    const days = Math.round((new Date(d).setHours(0, 0, 0, 0) - new Date().setHours(0, 0, 0, 0)) / 86400000);
    return { 0: "today", 1: "tomorrow", "-1": "yesterday" }[days] || plainForm;
  };
  const forms = {
    date_num: `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}`,
    date: day({ month: "long", day: "numeric", year: "numeric" }),
    date_short: day({ month: "short", day: "numeric", year: "numeric" }),
    date_long: day({ weekday: "long", month: "long", day: "numeric", year: "numeric" }),
    time: d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit" }),
    time_secs: d.toLocaleTimeString("en-US", { hour: "numeric", minute: "2-digit", second: "2-digit" }),
  };
  forms.date_pretty = pretty(forms.date);
  forms.date_short_pretty = pretty(forms.date_short);
  forms.date_long_pretty = pretty(forms.date_long);
  const ago = Math.round((Date.now() - d.getTime()) / 60000);
  forms.ago = ago >= 0 ? `${ago} minutes ago` : `in ${-ago} minutes`;
  return format.replace(/\{([a-z_]+)\}/g, (m, key) => (key in forms ? forms[key] : m));
}

// One <...> control sequence: mentions, channels, specials, links.
function controlSeq(inner) {
  const [target, label] = unent(inner).split("|", 2);
  if (target.startsWith("@")) {
    return `<span class="mention" data-user-id="${esc(target.slice(1))}">@${esc(label || userName(target.slice(1)))}</span>`;
  }
  if (target.startsWith("#")) {
    // A channel link, as in Slack: clicking it opens the channel (app.js).
    const id = target.slice(1);
    return `<a class="mention" data-testid="channel-link" data-link-channel="${esc(id)}" href="#channel=${encodeURIComponent(id)}">#${esc(label || channelName(id))}</a>`;
  }
  if (target.startsWith("!date^")) {
    // <!date^unix^format[^link]|fallback>: Slack shows it in the reader's own time zone.
    const [, secs, format] = target.split("^");
    const seconds = Number(secs);
    const shown = Number.isFinite(seconds) && format ? slackDate(seconds, format) : label || "";
    return `<time data-testid="date" data-epoch="${esc(secs)}" title="${esc(label || "")}">${esc(shown)}</time>`;
  }
  if (target.startsWith("!subteam^")) {
    const id = target.slice("!subteam^".length);
    return `<span class="mention">@${esc(label ? label.replace(/^@/, "") : id)}</span>`;
  }
  if (target.startsWith("!")) {
    const special = target.slice(1).split("^")[0];
    return `<span class="mention">@${esc(label || special)}</span>`;
  }
  return `<a data-testid="link" href="${esc(safeUrl(target))}" target="_blank" rel="noopener noreferrer">${esc(label || target)}</a>`;
}

function styled(text) {
  let h = esc(unent(text));
  h = h.replace(/(^|[^\w*])\*(?!\s)([^*\n]+?)\*(?![\w*])/g, "$1<b>$2</b>");
  h = h.replace(/(^|[^\w])_(?!\s)([^_\n]+?)_(?![\w])/g, "$1<i>$2</i>");
  h = h.replace(/(^|[^\w~])~(?!\s)([^~\n]+?)~(?![\w~])/g, "$1<s>$2</s>");
  return emojify(h);
}

function inlineSpan(text) {
  let html = "";
  let last = 0;
  const re = /<([^<>\n]+)>/g;
  let m;
  while ((m = re.exec(text))) {
    html += styled(text.slice(last, m.index)) + controlSeq(m[1]);
    last = re.lastIndex;
  }
  return html + styled(text.slice(last));
}

// Code spans first (their text is literal), held by placeholders so emphasis around them
// still applies: *`code`* is bold code, as in Slack.
function inline(line) {
  const codes = [];
  const held = line.replace(/\u0000/g, "").replace(/`([^`\n]+)`/g, (m, code) => {
    codes.push(`<code>${esc(unent(code))}</code>`);
    return `\u0000${codes.length - 1}\u0000`;
  });
  return inlineSpan(held).replace(/\u0000(\d+)\u0000/g, (m, i) => codes[Number(i)]);
}

function paragraphs(text) {
  const out = [];
  let quote = [];
  const flush = () => {
    if (quote.length) out.push(`<blockquote>${quote.join("<br>")}</blockquote>`);
    quote = [];
  };
  for (const line of text.split("\n")) {
    const q = line.match(/^(?:&gt;|>)\s?(.*)$/);
    if (q) {
      quote.push(inline(q[1]));
    } else {
      flush();
      out.push(inline(line));
    }
  }
  flush();
  return out.join("<br>").replace(/<br>(<blockquote>)/g, "$1").replace(/(<\/blockquote>)<br>/g, "$1");
}

function mrkdwn(text) {
  return String(text ?? "")
    .split("```")
    .map((part, i) => (i % 2 ? `<pre class="code-block">${esc(unent(part.replace(/^\n/, "")))}</pre>` : paragraphs(part)))
    .join("");
}

function plain(text) {
  return emojify(esc(text));
}

Object.assign(SB, { esc, unent, mrkdwn, plain, emojiName, userName, channelName, safeUrl });
