// Block Kit -> HTML strings (all text escaped) for messages and modals.
"use strict";

(function () {
  const SB = window.SB;
  const { esc, mrkdwn, plain } = SB;

  function textObj(t) {
    if (!t) return "";
    return t.type === "mrkdwn" ? mrkdwn(t.text) : plain(t.text);
  }

  // Only same-origin or data: images: the page must never reach the internet.
  function image(url, alt, cls) {
    const ok = typeof url === "string" && (url.startsWith("/") || url.startsWith("data:") || url.startsWith(location.origin));
    if (ok) return `<img class="${cls}" src="${esc(url)}" alt="${esc(alt)}">`;
    return `<span class="${cls} img-placeholder" title="${esc(url)}">🖼 ${esc(alt || "image")}</span>`;
  }

  function attrs(block, el) {
    return `data-block-id="${esc(block.block_id)}" data-action-id="${esc(el.action_id)}"`;
  }

  function option(o, selected) {
    return `<option value="${esc(o.value)}"${selected ? " selected" : ""}>${plain(o.text && o.text.text)}</option>`;
  }

  function element(block, el) {
    switch (el.type) {
      case "button": {
        const style = el.style ? ` btn-${esc(el.style)}` : "";
        const url = el.url ? ` data-url="${esc(SB.safeUrl(el.url))}"` : "";
        return `<button type="button" class="block-btn${style}" data-testid="block-button" ${attrs(block, el)} data-value="${esc(el.value ?? "")}"${url}>${plain(el.text && el.text.text)}</button>`;
      }
      case "static_select":
      case "overflow": {
        const ph = el.type === "overflow" ? "⋯" : (el.placeholder ? el.placeholder.text : "Select");
        const opts = (el.options || []).map((o) => option(o, false)).join("");
        return `<select class="block-select" data-testid="block-select" ${attrs(block, el)}><option value="">${esc(ph)}</option>${opts}</select>`;
      }
      case "image":
        return image(el.image_url, el.alt_text, "accessory-img");
      default:
        return `<span class="unsupported">[${esc(el.type)}]</span>`;
    }
  }

  function richElements(elements) {
    return (elements || []).map((e) => {
      let h;
      switch (e.type) {
        case "text": h = esc(e.text).replace(/\n/g, "<br>"); break;
        case "link": h = `<a href="${esc(SB.safeUrl(e.url))}" target="_blank" rel="noopener noreferrer">${esc(e.text || e.url)}</a>`; break;
        case "user": h = `<span class="mention" data-user-id="${esc(e.user_id)}">@${esc(SB.userName(e.user_id))}</span>`; break;
        case "channel": h = `<span class="mention">#${esc(SB.channelName(e.channel_id))}</span>`; break;
        case "usergroup": h = `<span class="mention">@${esc(e.usergroup_id)}</span>`; break;
        case "broadcast": h = `<span class="mention">@${esc(e.range)}</span>`; break;
        case "emoji": h = esc(SB.emojiName(e.name)); break;
        default: h = "";
      }
      const s = e.style || {};
      if (s.code) h = `<code>${h}</code>`;
      if (s.bold) h = `<b>${h}</b>`;
      if (s.italic) h = `<i>${h}</i>`;
      if (s.strike) h = `<s>${h}</s>`;
      return h;
    }).join("");
  }

  function richText(block) {
    return (block.elements || []).map((part) => {
      switch (part.type) {
        case "rich_text_section": return `<div>${richElements(part.elements)}</div>`;
        case "rich_text_preformatted": return `<pre class="code-block">${richElements(part.elements)}</pre>`;
        case "rich_text_quote": return `<blockquote>${richElements(part.elements)}</blockquote>`;
        case "rich_text_list": {
          const tag = part.style === "ordered" ? "ol" : "ul";
          const items = (part.elements || []).map((s) => `<li>${richElements(s.elements)}</li>`).join("");
          return `<${tag}>${items}</${tag}>`;
        }
        default: return "";
      }
    }).join("");
  }

  // A task (task_card): its status as Slack marks it, its title, then its details and output.
  const TASK_ICONS = { pending: "○", in_progress: "◔", complete: "✓", error: "✕" };
  function taskCard(b, id) {
    const icon = TASK_ICONS[b.status] || "○";
    const details = b.details ? `<div class="task-details">${richText(b.details)}</div>` : "";
    const output = b.output ? `<div class="task-output">${richText(b.output)}</div>` : "";
    return `<div class="blk blk-task task-${esc(b.status)}" data-testid="task-card" data-status="${esc(b.status)}" ${id}><span class="task-icon">${icon}</span> <span class="task-title">${plain(b.title)}</span>${details}${output}</div>`;
  }

  function block(b) {
    const id = `data-block-id="${esc(b.block_id)}" data-block-type="${esc(b.type)}"`;
    switch (b.type) {
      case "header":
        return `<div class="blk blk-header" ${id}>${textObj(b.text)}</div>`;
      case "section": {
        const fields = (b.fields || []).map((f) => `<div class="field">${textObj(f)}</div>`).join("");
        const acc = b.accessory ? `<div class="accessory">${element(b, b.accessory)}</div>` : "";
        const fieldHtml = fields ? `<div class="fields">${fields}</div>` : "";
        return `<div class="blk blk-section" ${id}><div class="section-main"><div class="section-text">${textObj(b.text)}</div>${fieldHtml}</div>${acc}</div>`;
      }
      case "divider":
        return `<hr class="blk blk-divider" ${id}>`;
      case "context": {
        const els = (b.elements || []).map((e) => (e.type === "image" ? image(e.image_url, e.alt_text, "ctx-img") : `<span>${textObj(e)}</span>`)).join("");
        return `<div class="blk blk-context" ${id}>${els}</div>`;
      }
      case "actions":
        return `<div class="blk blk-actions" ${id}>${(b.elements || []).map((e) => element(b, e)).join("")}</div>`;
      case "image":
        return `<div class="blk blk-image" ${id}>${b.title ? `<div class="img-title">${plain(b.title.text)}</div>` : ""}${image(b.image_url, b.alt_text, "blk-img")}</div>`;
      case "rich_text":
        return `<div class="blk blk-rich" ${id}>${richText(b)}</div>`;
      case "markdown":
        return `<div class="blk blk-markdown" ${id}>${mrkdwn(b.text)}</div>`;
      case "task_card":
        return taskCard(b, id);
      case "plan":
        return `<div class="blk blk-plan" ${id}><div class="plan-title">${plain(b.title)}</div>${(b.tasks || []).map((t) => taskCard(t, "")).join("")}</div>`;
      default:
        return `<div class="blk unsupported" ${id}>[unsupported block: ${esc(b.type)}]</div>`;
    }
  }

  function blocks(list) {
    return (list || []).map(block).join("");
  }

  // ----- modal inputs ---------------------------------------------------

  function inputElement(b) {
    const el = b.element || {};
    const a = `data-testid="modal-input" data-block-id="${esc(b.block_id)}" data-action-id="${esc(el.action_id)}" data-type="${esc(el.type)}"`;
    const ph = el.placeholder ? ` placeholder="${esc(el.placeholder.text)}"` : "";
    switch (el.type) {
      case "plain_text_input":
        return el.multiline
          ? `<textarea ${a}${ph} rows="4">${esc(el.initial_value || "")}</textarea>`
          : `<input type="text" ${a}${ph} value="${esc(el.initial_value || "")}">`;
      case "email_text_input":
      case "url_text_input":
      case "number_input":
        return `<input type="text" ${a}${ph} value="${esc(el.initial_value || "")}"${el.type === "number_input" ? ' inputmode="decimal"' : ""}>`;
      case "static_select":
      case "radio_buttons":
      case "checkboxes":
      case "multi_static_select":
        return choices(b, el, a);
      case "datepicker":
        return `<input type="date" ${a} value="${esc(el.initial_date || "")}">`;
      case "timepicker":
        return `<input type="time" ${a} value="${esc(el.initial_time || "")}">`;
      case "datetimepicker":
        return `<input type="datetime-local" ${a} value="${esc(localMinute(el.initial_date_time))}">`;
      case "users_select":
      case "multi_users_select":
        return picker(el, a, Object.values(SB.users).filter((u) => !u.is_bot), el.initial_users || [el.initial_user], "Select a person", (u) => u.name);
      case "conversations_select":
      case "multi_conversations_select":
      case "channels_select":
      case "multi_channels_select":
        return picker(el, a, conversations(el), el.initial_conversations || el.initial_channels || [el.initial_conversation || el.initial_channel], "Select a channel", (c) => `#${c.label || c.name}`);
      default:
        return `<span class="unsupported">[${esc(el.type)}]</span>`;
    }
  }

  // Slack's people and channel pickers: one <select> (multiple for the multi_ kinds), its
  // options the workspace's people or the channels this person can see; ids as values.
  function picker(el, a, items, initial, prompt, label) {
    const multi = el.type.startsWith("multi_");
    const chosen = new Set(initial.filter(Boolean));
    const opts = items.map((i) => `<option value="${esc(i.id)}"${chosen.has(i.id) ? " selected" : ""}>${esc(label(i))}</option>`).join("");
    const max = el.max_selected_items ? ` data-max="${esc(el.max_selected_items)}"` : "";
    const first = multi ? "" : `<option value="">${esc(el.placeholder ? el.placeholder.text : prompt)}</option>`;
    return `<select ${a}${multi ? " multiple" : ""}${max}>${first}${opts}</select>`;
  }

  // conversations_select's filter: include public / private / im / mpim (all by default).
  function conversations(el) {
    const include = new Set((el.filter && el.filter.include) || ["public", "private", "im", "mpim"]);
    return Object.values(SB.channels).filter((c) => (c.is_im ? include.has("im") : include.has(c.is_private ? "private" : "public")));
  }

  // A datetimepicker shows the moment in the reader's own time zone, to the minute.
  function localMinute(seconds) {
    if (typeof seconds !== "number") return "";
    const d = new Date(seconds * 1000);
    const two = (n) => String(n).padStart(2, "0");
    return `${d.getFullYear()}-${two(d.getMonth() + 1)}-${two(d.getDate())}T${two(d.getHours())}:${two(d.getMinutes())}`;
  }

  function choices(b, el, a) {
    const initial = new Set([el.initial_option, ...(el.initial_options || [])].filter(Boolean).map((o) => o.value));
    const opts = el.options || (el.option_groups || []).flatMap((g) => g.options || []);
    if (el.type === "static_select" || el.type === "multi_static_select") {
      const multi = el.type === "multi_static_select" ? " multiple" : "";
      const first = multi ? "" : `<option value="">${esc(el.placeholder ? el.placeholder.text : "Select an option")}</option>`;
      return `<select ${a}${multi}>${first}${opts.map((o) => option(o, initial.has(o.value))).join("")}</select>`;
    }
    const kind = el.type === "radio_buttons" ? "radio" : "checkbox";
    const items = opts.map((o) => `<label class="choice"><input type="${kind}" name="${esc(b.block_id)}" value="${esc(o.value)}" data-testid="modal-choice" data-block-id="${esc(b.block_id)}"${initial.has(o.value) ? " checked" : ""}> ${textObj(o.text)}${o.description ? `<span class="hint">${textObj(o.description)}</span>` : ""}</label>`).join("");
    return `<div class="choices" ${a}>${items}</div>`;
  }

  function modalBlock(b) {
    if (b.type !== "input") return block(b);
    const req = b.optional ? '<span class="optional">(optional)</span>' : '<span class="required" data-testid="required-marker">*</span>';
    const hint = b.hint ? `<div class="hint" data-testid="modal-hint">${plain(b.hint.text)}</div>` : "";
    return `<div class="input-block" data-testid="input-block" data-block-id="${esc(b.block_id)}">
      <label class="input-label">${plain(b.label && b.label.text)} ${req}</label>
      ${inputElement(b)}${hint}
      <div class="field-error" data-testid="modal-error" data-error-for="${esc(b.block_id)}"></div>
    </div>`;
  }

  // Read the modal form back as {block_id: value | [values]} for the sandbox API.
  function readValues(root, view) {
    const values = {};
    for (const b of view.blocks || []) {
      if (b.type !== "input") continue;
      const sel = `[data-testid="modal-input"][data-block-id="${CSS.escape(b.block_id)}"]`;
      const node = root.querySelector(sel);
      if (!node) continue;
      const type = node.dataset.type;
      if (type === "checkboxes") {
        values[b.block_id] = [...node.querySelectorAll("input:checked")].map((i) => i.value);
      } else if (type === "radio_buttons") {
        const c = node.querySelector("input:checked");
        values[b.block_id] = c ? c.value : null;
      } else if (type.startsWith("multi_")) {
        values[b.block_id] = [...node.selectedOptions].map((o) => o.value);
      } else if (type === "datetimepicker") {
        // Slack sends the picked moment as Unix seconds, read in the picker's time zone.
        values[b.block_id] = node.value === "" ? null : Math.floor(new Date(node.value).getTime() / 1000);
      } else {
        values[b.block_id] = node.value === "" ? null : node.value;
      }
    }
    return values;
  }

  Object.assign(SB, { renderBlocks: blocks, renderModalBlock: modalBlock, readValues, textObj });
})();
