import Foundation
import HTTPTypes
import Hummingbird

/// The web console: one HTML page, one stylesheet, one script, embedded in the binary (no build step, nothing
/// loaded from elsewhere). The script draws every screen from the JSON API with DOM calls (never HTML built from
/// data), under a Content-Security-Policy that allows only this origin's script and style.
extension CDFSyncServer {
    func addConsole(to router: Router<BasicRequestContext>) {
        router.get("/") { _, _ in HTML.response(ConsoleAssets.index) }
        router.get("/console/console.css") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/css; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: ConsoleAssets.css)))
        }
        router.get("/console/console.js") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/javascript; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(string: ConsoleAssets.javascript)))
        }
    }
}

enum ConsoleAssets {
    static let index = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>cdfsync</title>
        <link rel="stylesheet" href="/console/console.css">
        </head>
        <body>
        <header>
          <h1>cdfsync</h1>
          <nav>
            <a href="#/pipelines" id="nav-pipelines">Pipelines</a>
            <a href="#/connections" id="nav-connections">Connections</a>
            <a href="#/discover" id="nav-discover">Discover</a>
            <a href="#/conflicts" id="nav-conflicts">Conflicts</a>
          </nav>
          <form method="post" action="/logout" id="logout"><button type="submit" class="quiet">Sign out</button></form>
        </header>
        <div id="message" role="status"></div>
        <main id="view"><p>Loading…</p></main>
        <script src="/console/console.js"></script>
        </body>
        </html>
        """#

    static let css = #"""
        :root { --fg: #1d2330; --muted: #5d6675; --line: #d9dde4; --bg: #f6f7f9; --ok: #137333; --bad: #b3261e;
          --accent: #2f5bd3; font-family: system-ui, -apple-system, "Segoe UI", sans-serif; color: var(--fg); }
        body { margin: 0; background: var(--bg); }
        header { display: flex; align-items: center; gap: 2rem; padding: .6rem 1.5rem; background: #fff;
          border-bottom: 1px solid var(--line); }
        header h1 { font-size: 1.1rem; margin: 0; }
        nav { display: flex; gap: 1.2rem; flex: 1; }
        nav a { color: var(--muted); text-decoration: none; padding: .3rem 0; }
        nav a.active { color: var(--fg); border-bottom: 2px solid var(--accent); }
        main { padding: 1rem 1.5rem 3rem; max-width: 78rem; }
        h2 { font-size: 1.2rem; margin: .8rem 0; }
        h3 { font-size: 1rem; margin: 1.2rem 0 .5rem; }
        table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
        th, td { text-align: left; padding: .4rem .6rem; border-bottom: 1px solid var(--line); vertical-align: top;
          font-size: .9rem; }
        th { background: #eef0f4; font-weight: 600; }
        a { color: var(--accent); }
        button { font: inherit; padding: .35rem .8rem; border: 1px solid var(--accent); background: var(--accent);
          color: #fff; border-radius: 4px; cursor: pointer; }
        button.quiet { background: #fff; color: var(--accent); }
        button:disabled { opacity: .5; cursor: default; }
        input, select, textarea { font: inherit; padding: .3rem .4rem; border: 1px solid var(--line); border-radius: 4px; }
        textarea { width: 100%; min-height: 20rem; font-family: ui-monospace, monospace; font-size: .85rem; }
        form.grid { display: grid; grid-template-columns: 12rem 1fr; gap: .5rem 1rem; max-width: 40rem;
          background: #fff; padding: 1rem; border: 1px solid var(--line); }
        form.grid .actions { grid-column: 2; }
        pre { background: #fff; border: 1px solid var(--line); padding: .8rem; overflow: auto; font-size: .8rem; }
        .ok { color: var(--ok); } .bad { color: var(--bad); } .muted { color: var(--muted); }
        .badge { display: inline-block; padding: 0 .4rem; border-radius: 3px; font-size: .75rem; background: #e8ebf1; }
        .badge.on { background: #dff3e4; color: var(--ok); } .badge.off { background: #fbe3e1; color: var(--bad); }
        #message { margin: .6rem 1.5rem 0; }
        #message .error, .error { background: #fbe3e1; border: 1px solid #f0b8b3; padding: .5rem .8rem; color: var(--bad); }
        #message .info { background: #e4ecfb; border: 1px solid #bccbf0; padding: .5rem .8rem; }
        .steps { list-style: none; padding: 0; } .steps li { padding: .2rem 0; }
        .tree details { margin-left: 1.2rem; } .tree summary { cursor: pointer; padding: .15rem 0; }
        .tree .table-row { margin-left: 1.2rem; padding: .2rem 0; display: flex; gap: .6rem; align-items: center; }
        .tree ul.columns { margin: .2rem 0 .4rem 2.5rem; font-size: .85rem; color: var(--muted); }
        .row { display: flex; gap: .8rem; align-items: center; margin: .6rem 0; flex-wrap: wrap; }
        .confirm { background: #fff8e1; border: 1px solid #f0d68a; padding: .8rem; margin: .6rem 0; }
        body.login main { max-width: 24rem; margin: 4rem auto; background: #fff; padding: 1.5rem 2rem;
          border: 1px solid var(--line); }
        body.login form { display: grid; gap: .6rem; }
        body.login .hint { color: var(--muted); font-size: .85rem; }
        """#

    static let javascript = #"""
        "use strict";
        // cdfsync console: every screen is drawn from the JSON API (docs/serve.md) with DOM calls, never from HTML text.

        const view = document.getElementById("view");
        const message = document.getElementById("message");
        let refreshTimer = null;
        // A message for the screen the next hash change shows (a hash change clears the message).
        let pending = null;

        function el(tag, attrs, ...children) {
          const e = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) {
            if (v === null || v === undefined || v === false) continue;
            if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
            else if (k === "class") e.className = v;
            else e.setAttribute(k, v === true ? "" : v);
          }
          for (const c of children.flat()) {
            if (c === null || c === undefined) continue;
            e.append(c instanceof Node ? c : document.createTextNode(String(c)));
          }
          return e;
        }

        async function api(method, path, body) {
          const options = { method, headers: {} };
          if (body !== undefined) {
            options.headers["Content-Type"] = "application/json";
            options.body = JSON.stringify(body);
          }
          const r = await fetch(path, options);
          if (r.status === 401) { location.href = "/login"; throw { error: "signed out", remedy: "" }; }
          const text = await r.text();
          const data = text ? JSON.parse(text) : null;
          if (!r.ok) throw data || { error: "HTTP " + r.status, remedy: "" };
          return data;
        }

        function say(kind, text, remedy) {
          fill(message, el("div", { class: kind, id: "message-" + kind }, text,
            remedy ? el("div", { class: "muted" }, remedy) : null));
        }
        function clearMessage() { message.replaceChildren(); }
        // replaceChildren would show a null as the text "null": the screens pass null for "nothing here".
        function fill(target, ...nodes) {
          target.replaceChildren(...nodes.flat().filter(n => n !== null && n !== undefined && n !== false));
        }
        function failed(e) { say("error", e.error || String(e), e.remedy); }

        function age(seconds) {
          if (seconds === null || seconds === undefined) return "—";
          const s = Math.max(0, Math.round(seconds));
          if (s < 120) return s + " s";
          if (s < 7200) return Math.round(s / 60) + " min";
          if (s < 172800) return Math.round(s / 3600) + " h";
          return Math.round(s / 86400) + " d";
        }
        function when(iso) { return iso ? new Date(iso).toLocaleString() : "—"; }

        // MARK: Pipelines overview

        async function showPipelines() {
          const data = await api("GET", "/api/pipelines");
          const rows = data.pipelines.map(p => {
            const state = p.error ? el("span", { class: "bad" }, "does not load")
              : p.running ? el("span", { class: "ok" }, "running" + (p.trigger ? " (" + p.trigger + ")" : ""))
              : p.queued ? "queued" : "idle";
            const checkpoint = p.checkpoint ? (p.checkpoint.version !== null ? "v" + p.checkpoint.version
              : (p.checkpoint.watermark || "snapshot")) : "never synced";
            const last = p.last_run ? el("a", { href: "#/run/" + encodeURIComponent(p.name) + "/" + p.last_run.run_id,
              class: p.last_run.status === "succeeded" ? "ok" : "bad", id: "last-run-" + p.name },
              "run " + p.last_run.run_id + " " + p.last_run.status) : "—";
            return el("tr", { id: "pipeline-" + p.name },
              el("td", {}, el("a", { href: "#/pipeline/" + encodeURIComponent(p.name) }, p.name),
                p.error ? el("div", { class: "bad" }, p.error) : el("div", { class: "muted" }, p.source)),
              el("td", { class: "state" }, state),
              el("td", {}, checkpoint),
              el("td", {}, age(p.freshness_seconds)),
              el("td", {}, p.schedule ? when(p.next_run_at) : "on trigger"),
              el("td", {}, last),
              el("td", {}, p.warehouse ? p.warehouse.state : "—"),
              el("td", {}, el("button", { id: "run-" + p.name, disabled: !!p.error, onclick: () => runNow(p.name) },
                "Run now")));
          });
          fill(view, el("h2", {}, "Pipelines"),
            el("table", { id: "pipelines" }, el("thead", {}, el("tr", {}, ["Pipeline", "State", "Checkpoint",
              "Freshness", "Next run", "Last run", "Warehouse", ""].map(h => el("th", {}, h)))), el("tbody", {}, rows)),
            rows.length ? null : el("p", { class: "muted" }, "No pipeline files yet: create one from Discover."));
          refreshTimer = setTimeout(route, 2000);
        }

        async function runNow(name) {
          try {
            const r = await api("POST", "/api/pipelines/" + encodeURIComponent(name) + "/run");
            say("info", name + ": run " + r.run.replace("_", " "));
            route();
          } catch (e) { failed(e); }
        }

        // MARK: One pipeline: runs, replay, file

        async function showPipeline(name) {
          const [p, runs, file] = await Promise.all([
            api("GET", "/api/pipelines/" + encodeURIComponent(name)),
            api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/runs?limit=50"),
            api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/file")]);
          const runRows = runs.runs.map(r => el("tr", {},
            el("td", {}, el("a", { href: "#/run/" + encodeURIComponent(name) + "/" + r.run_id, id: "run-link-" + r.run_id },
              String(r.run_id))),
            el("td", {}, when(r.started_at)), el("td", {}, r.mode),
            el("td", { class: r.status === "succeeded" ? "ok" : "bad" }, r.status),
            el("td", {}, r.counts.read), el("td", {}, r.counts.inserted), el("td", {}, r.counts.updated),
            el("td", {}, r.counts.unchanged)));
          const yaml = el("textarea", { id: "file-text", spellcheck: "false" });
          yaml.value = file.yaml;
          fill(view, 
            el("h2", {}, name),
            el("p", { class: "muted" }, p.file),
            el("div", { class: "row" }, el("button", { id: "run-" + name, onclick: () => runNow(name) }, "Run now"),
              el("a", { href: "#/invitations/" + encodeURIComponent(name), id: "invitations-link" }, "Invitations")),
            activationPanel(name),
            el("h3", {}, "Runs"),
            el("table", { id: "runs" }, el("thead", {}, el("tr", {}, ["Run", "Started", "Mode", "Status", "Read",
              "Inserted", "Updated", "Unchanged"].map(h => el("th", {}, h)))), el("tbody", {}, runRows)),
            replayForm(name),
            el("h3", {}, "Pipeline file"),
            el("p", { class: "muted" }, "The file is the pipeline: edits made here or by hand are picked up at once."),
            yaml,
            el("div", { class: "row" }, el("button", { id: "save-file", onclick: async () => {
              try {
                await api("PUT", "/api/pipelines/" + encodeURIComponent(name) + "/file", { yaml: yaml.value });
                say("info", "saved " + p.file);
              } catch (e) { failed(e); }
            } }, "Save file")));
        }

        function replayForm(name) {
          const from = el("input", { id: "replay-from", type: "number", min: "0", value: "0" });
          const to = el("input", { id: "replay-to", type: "number", min: "0", placeholder: "latest" });
          const result = el("div", { id: "replay-result" });
          const run = async dryRun => {
            const body = { from_version: Number(from.value), dry_run: dryRun };
            if (to.value !== "") body.to_version = Number(to.value);
            fill(result, el("p", { class: "muted" }, dryRun ? "Dry run…" : "Replaying…"));
            try {
              const r = await api("POST", "/api/pipelines/" + encodeURIComponent(name) + "/replay", body);
              fill(result, replayDiff(r, dryRun, () => run(false)));
            } catch (e) { fill(result, el("div", { class: "error" }, e.error, el("div", {}, e.remedy))); }
          };
          return el("section", {}, el("h3", {}, "Replay"),
            el("p", { class: "muted" }, "Read a version range again. Per-key monotonicity: nothing newer than the panel " +
              "holds changes. A dry run first shows what the replay would change and writes only its audit record."),
            el("div", { class: "row" }, el("label", { for: "replay-from" }, "From version"), from,
              el("label", { for: "replay-to" }, "to"), to,
              el("button", { id: "replay-dry-run", onclick: () => run(true) }, "Dry run")),
            result);
        }

        function replayDiff(r, dryRun, realRun) {
          const c = r.counts;
          const lines = [["would create", "created", c.inserted], ["would update", "updated", c.updated + c.linked],
            ["unchanged", "unchanged", c.unchanged], ["older than the panel (skipped)", "skipped", c.skipped_older],
            ["not opted in", "not opted in", c.consent_blocked], ["invalid", "invalid", c.invalid]];
          const table = el("table", { id: dryRun ? "dry-run-diff" : "replay-done" },
            el("thead", {}, el("tr", {}, el("th", {}, "Rows read " + c.read), el("th", {}, ""))),
            el("tbody", {}, lines.map(([d, done, n]) => el("tr", {}, el("td", {}, dryRun ? d : done), el("td", {}, n)))));
          const head = el("p", {}, (dryRun ? "Dry run " : "Replay ") + "(run " + r.run_id + ") of " + (r.parts || [])
            .map(p => p.mode + " v" + p.from_version + "…v" + p.to_version).join(", ") + ": " + r.status +
            (r.error ? " — " + r.error : ""));
          if (!dryRun || r.status !== "succeeded") return el("div", {}, head, table);
          const confirm = el("div", { class: "confirm", id: "replay-confirm" },
            el("p", {}, "Apply this replay for real? It writes what the dry run shows (never anything newer than the " +
              "panel holds) and records a run."),
            el("button", { id: "replay-for-real", onclick: realRun }, "Replay for real"));
          return el("div", {}, head, table, confirm);
        }

        // MARK: Activation: preview, confirmation screen, deactivation (docs/activation.md)

        function standingText(st) {
          const who = st.by ? " by " + st.by + " at " + when(st.at) : "";
          switch (st.state) {
            case "confirmed": return "Confirmed" + who + ": invitations are sent";
            case "not_required": return "No confirmation needed (a pool contacts nobody)";
            case "unconfirmed": return "Not confirmed: invitations are held";
            case "stale": return "Confirmation" + who + " is stale (the activation, mapping, consent or source " +
              "changed): invitations are held";
            case "deactivated": return "Deactivated" + who + ": invitations are held";
            default: return st.description;
          }
        }
        function reasons(r) {
          return Object.entries(r || {}).sort((a, b) => b[1] - a[1]).map(([k, n]) => n + " " + k).join(", ");
        }
        function previewTable(a) {
          const verb = a.target.requires_confirmation ? "invited" : "added to the pool";
          const rows = [["Held, would be " + verb + " now (sent by the next run)", a.held.would_send, "held-would-send"],
            ["Held, excluded", a.held.excluded + (a.held.excluded ? " (" + reasons(a.held.excluded_reasons) + ")" : ""),
              "held-excluded"]];
          if (a.source) {
            const s = a.source;
            const part = (s.rows_read >= s.limit ? "first " : "all ") + s.rows_read + " rows of the source";
            rows.push(["Would be " + verb + " as imported (" + part + ")", s.would_invite, "source-would-invite"],
              ["Already " + verb, s.already_invited, "source-already-invited"],
              ["Already held (counted above)", s.already_held, "source-already-held"],
              ["Already in the panel (" + verb + " only if a change makes them newly eligible)", s.already_in_panel,
                "source-already-in-panel"],
              ["Excluded", s.excluded + (s.excluded ? " (" + reasons(s.excluded_reasons) + ")" : ""), "source-excluded"]);
          }
          const sample = [...a.held.sample, ...(a.source ? a.source.sample : [])];
          return el("div", {},
            el("table", { id: "activation-preview" }, el("tbody", {}, rows.map(([k, v, id]) =>
              el("tr", {}, el("th", {}, k), el("td", { id: "preview-" + id }, String(v)))))),
            sample.length ? el("div", {}, el("p", { class: "muted" }, "Sample of who would be " + verb + ":"),
              el("ul", { id: "activation-sample" }, sample.map(x => el("li", {}, x.external_id + "  " + x.contact))))
              : null);
        }

        function activationPanel(name) {
          const panel = el("section", { id: "activation" }, el("h3", {}, "Activation"),
            el("p", { class: "muted" }, "Loading the preview…"));
          (async () => {
            let a;
            try {
              a = await api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/activation?sample_rows=100");
            } catch (e) {
              fill(panel, el("h3", {}, "Activation"), el("p", { class: "muted", id: "activation-none" }, e.error));
              return;
            }
            const st = a.standing;
            const needs = a.target.requires_confirmation && (st.state !== "confirmed" || a.held.would_send > 0);
            fill(panel, el("h3", {}, "Activation"),
              el("p", {}, a.target.description + " ",
                el("span", { class: "badge " + (st.sends ? "on" : "off"), id: "activation-standing" }, st.state)),
              el("p", { id: "activation-state" }, standingText(st)),
              el("p", { class: "muted" }, "What confirming would do now:"),
              previewTable(a),
              el("div", { class: "row" },
                needs ? el("button", { id: "activation-confirm-open",
                  onclick: () => { location.hash = "#/activate/" + encodeURIComponent(name); } }, "Confirm activation…")
                  : null,
                a.target.requires_confirmation && st.state !== "deactivated" && st.state !== "unconfirmed"
                  ? el("button", { class: "quiet", id: "activation-deactivate", onclick: async () => {
                    try {
                      const r = await api("POST", "/api/pipelines/" + encodeURIComponent(name) + "/activation/deactivate");
                      say("info", name + ": invitations stopped (" + standingText(r.standing) + ")" +
                        (r.held ? "; " + r.held + " queued invitation(s) not yet sent are held" : ""));
                      route();
                    } catch (e) { failed(e); }
                  } }, "Deactivate") : null));
          })();
          return panel;
        }

        async function showActivate(name) {
          const a = await api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/activation?sample_rows=100");
          const back = "#/pipeline/" + encodeURIComponent(name);
          const total = a.held.would_send + (a.source ? a.source.would_invite : 0);
          fill(view,
            el("h2", { id: "activate-title" }, "Confirm the activation of " + name),
            el("div", { class: "confirm", id: "activation-summary" },
              el("p", {}, el("strong", {}, a.target.description), " for eligible participants of " + name + "."),
              el("p", {}, a.held.would_send + " held invitation(s) would be sent by the next run; " +
                (a.source ? a.source.would_invite + " eligible participant(s) of the source's first " +
                  a.source.rows_read + " rows would be invited as they are imported" : "the source was not read") +
                " (" + total + " in all in this preview)."),
              el("p", {}, "From then on, every run sends invitations as participants become eligible, until the " +
                "pipeline is deactivated or its activation, mapping, attributes, consent or source change."),
              el("p", { class: "muted" }, "Now: " + standingText(a.standing) + ". Settings sha256 " +
                a.settings_hash.slice(0, 16) + "…; the confirmation records the service's OS user (marked " +
                "“(console)”), the host and the time.")),
            previewTable(a),
            el("div", { class: "row" },
              el("button", { id: "activation-confirm", onclick: async () => {
                try {
                  const r = await api("POST", "/api/pipelines/" + encodeURIComponent(name) + "/activation/confirm",
                    { settings_hash: a.settings_hash });
                  const dropped = Object.values(r.dropped).reduce((x, y) => x + y, 0);
                  pending = ["info", name + ": " + standingText(r.standing) + "; released " + r.released +
                    " held invitation(s) for the next run" + (dropped ? "; dropped " + dropped + " no longer eligible" : "")];
                  location.hash = back;
                } catch (e) { failed(e); }
              } }, "Confirm activation"),
              el("a", { href: back, id: "activation-cancel" }, "Cancel")));
        }

        // MARK: Invitations: the ledger of a pipeline

        async function showInvitations(name, only, offset) {
          offset = Number(offset) || 0;
          const limit = 100;
          const q = "?limit=" + limit + "&offset=" + offset + (only ? "&state=" + encodeURIComponent(only) : "");
          const d = await api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/invitations" + q);
          const link = (s, o) => "#/invitations/" + encodeURIComponent(name) + "/" + (s || "all") + "/" + o;
          const filters = el("div", { class: "row", id: "invitation-filters" }, el("a", { href: link("", 0) },
            "all " + Object.values(d.counts).reduce((x, y) => x + y, 0)),
            Object.entries(d.counts).map(([s, n]) => el("a", { href: link(s, 0), id: "invitations-" + s,
              class: s === only ? "badge on" : "" }, n + " " + s)));
          const pages = el("div", { class: "row" },
            offset > 0 ? el("a", { href: link(only, Math.max(0, offset - limit)) }, "← previous") : null,
            el("span", { class: "muted" }, d.total ? (offset + 1) + "–" + (offset + d.invitations.length) + " of " +
              d.total : ""),
            offset + limit < d.total ? el("a", { href: link(only, offset + limit), id: "invitations-next" }, "next →")
              : null);
          fill(view,
            el("h2", {}, "Invitations of " + name),
            el("p", { class: "muted" }, "The ledger: who was invited (or held, withdrawn, dropped) to what, and when. " +
              "Held entries wait for the activation's confirmation."),
            filters,
            d.invitations.length ? el("table", { id: "invitations" }, el("thead", {}, el("tr", {}, ["State", "Target",
              "Participant", "External id", "Decided", "Sent", "Segment", "Reason"].map(h => el("th", {}, h)))),
              el("tbody", {}, d.invitations.map(i => el("tr", {},
                el("td", { class: i.state === "sent" ? "ok" : i.state === "held" ? "muted" : "" }, i.state),
                el("td", {}, i.target), el("td", {}, String(i.participant_id)), el("td", {}, i.external_id),
                el("td", {}, when(i.decided_at)), el("td", {}, when(i.sent_at)), el("td", {}, i.file || "—"),
                el("td", {}, i.reason || "")))))
              : el("p", { class: "muted", id: "no-invitations" }, "No invitations" + (only ? " " + only : "") + "."),
            pages,
            el("p", {}, el("a", { href: "#/pipeline/" + encodeURIComponent(name) }, "← " + name)));
        }

        // MARK: A run's audit record

        async function showRun(name, id) {
          const r = await api("GET", "/api/pipelines/" + encodeURIComponent(name) + "/runs/" + id);
          const facts = [["status", r.status], ["mode", r.mode], ["started", when(r.started_at)], ["seconds", r.seconds],
            ["read", (r.parts || []).map(p => p.mode + (p.from_version !== null ? " v" + p.from_version + "…v" +
              p.to_version : "")).join(", ") || "nothing new"],
            ["checkpoint", (r.checkpoint_before ?? "—") + " → " + (r.checkpoint_version ?? "—")],
            ["last commit", r.last_commit_at || "—"], ["statements", (r.statement_ids || []).length],
            ["bytes received", r.bytes_received], ["user@host", r.user + "@" + r.host], ["error", r.error || "—"]];
          fill(view, 
            el("h2", { id: "run-title" }, name + " — run " + r.run_id),
            el("table", { id: "run-record" }, el("tbody", {}, facts.map(([k, v]) => el("tr", {}, el("th", {}, k),
              el("td", {}, String(v)))))),
            el("h3", {}, "Counts"),
            el("table", { id: "run-counts" }, el("tbody", {}, Object.entries(r.counts).map(([k, v]) =>
              el("tr", {}, el("th", {}, k.replaceAll("_", " ")), el("td", {}, v))))),
            (r.warnings || []).length ? el("div", {}, el("h3", {}, "Warnings"),
              el("ul", {}, r.warnings.map(w => el("li", {}, w)))) : null,
            el("h3", {}, "Audit record"),
            el("pre", { id: "run-json" }, JSON.stringify(r, null, 2)),
            el("p", {}, el("a", { href: "#/pipeline/" + encodeURIComponent(name) }, "← " + name)));
        }

        // MARK: Connections

        async function showConnections() {
          const data = await api("GET", "/api/connections");
          const results = {};
          const rows = data.connections.map(c => {
            const out = el("td", { id: "test-" + c.name });
            results[c.name] = out;
            return [el("tr", { id: "connection-" + c.name },
              el("td", {}, c.name), el("td", {}, c.host), el("td", {}, c.warehouse_id), el("td", {}, c.auth),
              el("td", {}, c.secret.kind === "stored" ? "stored encrypted (write-only)" :
                "env " + c.secret.variable + (c.secret.set === "true" ? "" : " (not set)")),
              el("td", {}, c.pipelines.length ? c.pipelines.join(", ") : el("span", { class: "muted" }, "none")),
              el("td", {}, el("button", { id: "test-button-" + c.name, class: "quiet",
                onclick: () => testConnection(c.name, out) }, "Test"))),
              el("tr", {}, out)];
          });
          for (const [name, td] of Object.entries(results)) td.setAttribute("colspan", "7");
          fill(view, el("h2", {}, "Connections"),
            el("table", { id: "connections" }, el("thead", {}, el("tr", {}, ["Name", "Host", "Warehouse", "Auth", "Secret",
              "Pipelines", ""].map(h => el("th", {}, h)))), el("tbody", {}, rows.flat())),
            el("h3", {}, "Add a connection"), addConnectionForm());
        }

        async function testConnection(name, out) {
          fill(out, el("span", { class: "muted" }, "Testing…"));
          try {
            const r = await api("POST", "/api/connections/" + encodeURIComponent(name) + "/test");
            const steps = r.steps.map(s => el("li", { class: s.passed ? "ok" : "bad" },
              (s.passed ? "✓ " : "✗ ") + s.step + " — " + s.detail + " (" + s.milliseconds + " ms)"));
            const rest = r.remaining.map(s => el("li", { class: "muted" }, "· " + s + " (not run)"));
            fill(out, el("ul", { class: "steps", id: "steps-" + name }, steps, rest),
              r.failure ? el("div", { class: "error" }, r.failure.category + ": " + r.failure.message,
                el("div", {}, "Remedy: " + r.failure.remedy)) : el("div", { class: "ok", id: "test-passed-" + name },
                "All checks passed."));
          } catch (e) { fill(out, el("div", { class: "error" }, e.error, el("div", {}, e.remedy))); }
        }

        function addConnectionForm() {
          const f = {};
          const field = (id, label, input) => { f[id] = input; return [el("label", { for: "conn-" + id }, label), input]; };
          const auth = el("select", { id: "conn-auth" }, el("option", { value: "pat" }, "personal access token"),
            el("option", { value: "oauth-m2m" }, "OAuth (service principal)"));
          const form = el("form", { class: "grid", id: "add-connection" },
            field("name", "Name", el("input", { id: "conn-name", required: true })),
            field("host", "Workspace URL", el("input", { id: "conn-host", required: true,
              placeholder: "https://dbc-….cloud.databricks.com" })),
            field("warehouse", "SQL warehouse id", el("input", { id: "conn-warehouse", required: true })),
            field("auth", "Sign in with", auth),
            field("client", "Client id (OAuth)", el("input", { id: "conn-client" })),
            field("secret", "Token or client secret", el("input", { id: "conn-secret", type: "password",
              autocomplete: "off" })),
            field("secretenv", "…or read from variable", el("input", { id: "conn-secretenv", placeholder: "DATABRICKS_TOKEN" })),
            el("p", { class: "muted actions" }, "A secret given here is stored encrypted and never shown again."),
            el("div", { class: "actions" }, el("button", { type: "submit", id: "conn-add" }, "Add connection")));
          form.addEventListener("submit", async ev => {
            ev.preventDefault();
            try {
              await api("POST", "/api/connections", { name: f.name.value, host: f.host.value,
                warehouse_id: f.warehouse.value, auth: f.auth.value, client_id: f.client.value || null,
                secret: f.secret.value || null, secret_env: f.secretenv.value || null });
              f.secret.value = "";
              say("info", "connection " + f.name.value + " added");
              route();
            } catch (e) { failed(e); }
          });
          return form;
        }

        // MARK: Discovery

        async function showDiscover() {
          const data = await api("GET", "/api/connections");
          const select = el("select", { id: "discover-connection" },
            data.connections.map(c => el("option", { value: c.name }, c.name)));
          const tree = el("div", { class: "tree", id: "tree" });
          fill(view, el("h2", {}, "Discover"),
            data.connections.length ? el("div", { class: "row" }, el("label", { for: "discover-connection" }, "Connection"),
              select, el("button", { id: "discover-button", onclick: () => discover(select.value, tree) }, "Discover"))
              : el("p", { class: "muted" }, "Add a connection first."),
            tree);
        }

        async function discover(connection, tree) {
          fill(tree, el("p", { class: "muted" }, "Reading catalogs, schemas, tables and columns…"));
          try {
            const d = await api("GET", "/api/connections/" + encodeURIComponent(connection) + "/discovery");
            fill(tree, ...d.catalogs.map(c => el("details", { open: true, id: "catalog-" + c.name },
              el("summary", {}, c.name),
              c.schemas.map(s => el("details", { open: true, id: "schema-" + c.name + "." + s.name },
                el("summary", {}, s.name),
                s.tables.map(t => tableNode(connection, c.name + "." + s.name + "." + t.name, t)))))));
          } catch (e) { fill(tree, el("div", { class: "error" }, e.error, el("div", {}, e.remedy))); }
        }

        function tableNode(connection, full, t) {
          const cdf = t.change_data_feed === null ? el("span", { class: "badge" }, "CDF ?")
            : el("span", { class: "badge " + (t.change_data_feed ? "on" : "off") }, t.change_data_feed ? "CDF on" : "CDF off");
          return el("div", {},
            el("div", { class: "table-row", id: "table-" + full },
              el("strong", {}, t.name), el("span", { class: "badge" }, t.type.toLowerCase()), cdf,
              t.latest_version !== null ? el("span", { class: "badge" }, "v" + t.latest_version) : null,
              el("button", { class: "quiet", id: "new-pipeline-" + full,
                onclick: () => newDraft(connection, full) }, "New pipeline")),
            el("ul", { class: "columns" }, t.columns.map(col => el("li", {}, col.name + " " + col.type.toLowerCase() +
              (col.nullable ? "" : " not null")))));
        }

        async function newDraft(connection, source) {
          say("info", "Profiling " + source + " (columns and a sample)…");
          try {
            const d = await api("POST", "/api/drafts", { connection, source });
            clearMessage();
            location.hash = "#/draft/" + d.id;
          } catch (e) { failed(e); }
        }

        // MARK: Pipeline editor (a draft)

        async function showDraft(id, draft) {
          const d = draft || await api("PUT", "/api/drafts/" + id, {});
          const name = el("input", { id: "draft-name", value: d.name });
          const schedule = el("select", { id: "draft-schedule" }, ["", "15m", "hourly", "daily"].map(s =>
            el("option", { value: s, selected: (d.schedule || "") === s }, s || "none (on trigger)")));
          const columnsByName = Object.fromEntries(d.columns.map(c => [c.name, c.type]));
          const selects = {};
          const rows = d.fields.map(f => {
            const s = el("select", { id: "map-" + f.field }, el("option", { value: "" }, "—"),
              d.columns.map(c => el("option", { value: c.name, selected: f.column === c.name }, c.name + " (" +
                c.type.toLowerCase() + ")")));
            selects[f.field] = s;
            return el("tr", {}, el("td", {}, f.field), el("td", {}, s),
              el("td", { class: f.status === "suggested" ? "ok" : "muted" }, f.status.replace("_", " ")),
              el("td", { class: "muted" }, f.reason));
          });
          const checks = el("div", { id: "draft-checks" });
          const preview = el("div", { id: "draft-preview" });
          const apply = async () => {
            const mapping = {};
            for (const [field, s] of Object.entries(selects)) mapping[field] = s.value;
            return await api("PUT", "/api/drafts/" + id, { name: name.value, schedule: schedule.value, mapping });
          };
          fill(view, 
            el("h2", {}, "New pipeline from " + d.source),
            el("p", { class: "muted" }, "Suggested by pipeline init from the source's columns and a sample; choose a " +
              "column for each field, check the types, preview, then save the file."),
            el("div", { class: "row" }, el("label", { for: "draft-name" }, "Name"), name,
              el("label", { for: "draft-schedule" }, "Schedule"), schedule,
              el("span", { class: "muted" }, "mode " + d.mode + (d.consent ? ", consent from " + d.consent : ""))),
            el("table", { id: "mapping" }, el("thead", {}, el("tr", {}, ["Field", "Column", "Suggestion", "Why"]
              .map(h => el("th", {}, h)))), el("tbody", {}, rows)),
            el("div", { class: "row" },
              el("button", { id: "draft-apply", class: "quiet", onclick: async () => {
                try { showDraft(id, await apply()); } catch (e) { failed(e); } } }, "Apply"),
              el("button", { id: "draft-check", class: "quiet", onclick: async () => {
                try { await apply(); showChecks(await api("POST", "/api/drafts/" + id + "/check"), checks); }
                catch (e) { failed(e); } } }, "Check types"),
              el("button", { id: "draft-preview-button", class: "quiet", onclick: async () => {
                try { await apply(); showPreview(await api("POST", "/api/drafts/" + id + "/preview"), preview); }
                catch (e) { failed(e); } } }, "Preview"),
              el("button", { id: "draft-save", onclick: async () => {
                try {
                  await apply();
                  const r = await api("POST", "/api/drafts/" + id + "/save", { overwrite: false });
                  say("info", "saved " + r.file + ": pipeline " + r.pipeline + " is now in the overview");
                  location.hash = "#/pipelines";
                } catch (e) { failed(e); } } }, "Save pipeline")),
            checks, preview,
            el("h3", {}, "The file it writes: " + d.file + (d.exists ? " (exists)" : "")),
            el("pre", { id: "draft-yaml" }, d.yaml));
        }

        function showChecks(r, out) {
          fill(out, el("h3", {}, "Checks against the source"),
            r.problems.length ? el("div", { class: "error" }, r.problems.join("\n")) : null,
            el("ul", { class: "steps", id: "check-list" }, r.findings.map(f => el("li", { class: f.ok ? "ok" : "bad" },
              (f.ok ? "✓ " : "✗ ") + f.field + " — " + f.message))),
            el("p", { id: "check-result", class: r.ok ? "ok" : "bad" }, r.ok ? "Every check passed." : "Fix what is marked ✗."));
        }

        function showPreview(r, out) {
          const keys = [...new Set(r.rows.flatMap(row => Object.keys(row.record || {})))];
          fill(out, el("h3", {}, "Preview: the first " + r.rows.length + " rows as the sync maps them"),
            el("table", { id: "preview-table" }, el("thead", {}, el("tr", {}, ["outcome", "id", ...keys].map(h => el("th", {}, h)))),
              el("tbody", {}, r.rows.map(row => el("tr", { class: row.outcome === "invalid" ? "bad" : "" },
                el("td", {}, row.outcome.replaceAll("_", " ")), el("td", {}, row.id || row.reason || ""),
                keys.map(k => el("td", {}, row.record && row.record[k] !== undefined ? row.record[k] : "")))))));
        }

        // MARK: Conflicts

        async function showConflicts() {
          const data = await api("GET", "/api/conflicts?limit=200");
          fill(view, el("h2", {}, "Identity conflicts"),
            el("p", { class: "muted" }, "A row whose email or phone points at another participant than its external id: " +
              "recorded, never merged."),
            ...data.state_dirs.map(d => {
              const keys = [...new Set(d.conflicts.flatMap(c => Object.keys(c)))];
              return el("section", {}, el("h3", {}, d.path),
                d.conflicts.length ? el("table", { class: "conflicts" },
                  el("thead", {}, el("tr", {}, keys.map(k => el("th", {}, k.replaceAll("_", " "))))),
                  el("tbody", {}, d.conflicts.map(c => el("tr", {}, keys.map(k => el("td", {},
                    typeof c[k] === "object" ? JSON.stringify(c[k]) : String(c[k] ?? ""))))))) :
                  el("p", { class: "muted", id: "no-conflicts" }, "No conflicts."));
            }));
        }

        // MARK: Routing

        async function route() {
          clearTimeout(refreshTimer);
          const parts = (location.hash || "#/pipelines").slice(2).split("/").map(decodeURIComponent);
          for (const a of document.querySelectorAll("nav a"))
            a.classList.toggle("active", a.getAttribute("href") === "#/" + parts[0]);
          try {
            switch (parts[0]) {
              case "pipeline": await showPipeline(parts[1]); break;
              case "run": await showRun(parts[1], parts[2]); break;
              case "activate": await showActivate(parts[1]); break;
              case "invitations": await showInvitations(parts[1], parts[2] === "all" ? "" : parts[2], parts[3]); break;
              case "connections": await showConnections(); break;
              case "discover": await showDiscover(); break;
              case "draft": await showDraft(parts[1]); break;
              case "conflicts": await showConflicts(); break;
              default: await showPipelines();
            }
          } catch (e) { failed(e); }
        }

        window.addEventListener("hashchange", () => {
          clearMessage();
          if (pending) { say(...pending); pending = null; }
          route();
        });
        route();
        """#
}
