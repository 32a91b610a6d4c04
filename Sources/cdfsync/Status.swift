import ArgumentParser
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation

extension CDFSyncCommand {
    /// `cdfsync status`: where every pipeline of a state directory stands, from one look at the store — its
    /// checkpoint, its last run, what is waiting to be delivered — without contacting the warehouse.
    struct Status: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Where every pipeline of a state directory stands: checkpoint, last run, undelivered changes.",
            discussion: """
                Reads the state store only (no warehouse connection). Webhook lines show how far each webhook \
                sink has acknowledged the delivered changes. Output lines show, per output directory, what the \
                next run would repair after a delivery that was killed part-way (status itself writes nothing). \
                --json prints the same as one JSON object.
                """)

        @OptionGroup var state: StateOptions
        @OptionGroup var config: ConfigDirOptions

        @Flag(help: "Print the status as one JSON object.")
        var json = false

        /// Run records read (newest first) to find each pipeline's last run.
        static let runsScanned = 5_000

        struct PipelineStatus {
            var name: String
            var checkpoint: PanelStore.Checkpoint?
            /// The newest run record of the pipeline, as it reads now.
            var lastRun: (id: UInt64, record: RunRecord)?
            /// The saved connection its syncs use, and why it cannot run now (the connection was removed, or is not
            /// saved in the config directory).
            var connection: String?
            var connectionProblem: String?
        }

        func run() throws {
            try reportingErrors {
                let store = try state.openExistingStore()
                let stats = try store.statistics()
                let all = try store.checkpoints()
                // Webhook sinks keep their acknowledged sequence as a checkpoint named webhook/<pipeline>/<url hash>.
                let webhooks = all.filter { $0.pipeline.hasPrefix("webhook/") }
                var pipelines = all.filter { !$0.pipeline.hasPrefix("webhook/") }
                    .map { PipelineStatus(name: $0.pipeline, checkpoint: $0.checkpoint) }
                // Each pipeline's newest run; pipelines that ran but never checkpointed are listed too.
                let holder = WriterLock.holder(of: state.stateDir)
                for (id, stored) in try store.runs(limit: Self.runsScanned) {
                    // A record this build cannot read is skipped (`cdfsync runs` lists it).
                    guard let record = try? Runs.List.read(stored, id: id, holder: holder) else { continue }
                    let name = record.pipeline
                    if let i = pipelines.firstIndex(where: { $0.name == name }) {
                        if pipelines[i].lastRun == nil { pipelines[i].lastRun = (id, record) }
                    } else {
                        pipelines.append(PipelineStatus(name: name, checkpoint: nil, lastRun: (id, record)))
                    }
                }
                pipelines.sort { $0.name < $1.name }
                try Self.addConnections(&pipelines, store: store, config: config)
                let warnings = directoryWarnings(stateDirectory: state.stateDir,
                    deliveryDirectories: try store.deliveryDirectories().map { ($0.directory, $0.fileMode) })
                // What the next run's delivery would repair in each output directory (read-only look).
                let repairs = try store.deliveryRepairs()
                let activations = try ActivationStatus.load(store, lastRuns: pipelines.compactMap { p in
                    p.lastRun.flatMap { run in run.record.invitations.map { (p.name, run.id, $0) } } })
                if json {
                    print(String(decoding: Self.json(stats, pipelines, webhooks, directory: state.stateDir,
                        writer: holder, warnings: warnings, repairs: repairs, activations: activations), as: UTF8.self))
                } else {
                    print(Self.text(stats, pipelines, webhooks, directory: state.stateDir, writer: holder,
                        warnings: warnings, repairs: repairs, activations: activations))
                }
            }
        }

        /// Each pipeline's saved connection (as its syncs recorded it) and, when it cannot run, why: the
        /// connection was removed, or is not saved in the config directory. The connection store is only read
        /// when it exists (status creates nothing).
        static func addConnections(_ pipelines: inout [PipelineStatus], store: PanelStore, config: ConfigDirOptions) throws {
            let used = try store.pipelineConnections()
            guard !used.isEmpty else { return }
            let env = ProcessInfo.processInfo.environment
            let dir = ConfigDirectory.resolve(config.configDir, environment: env)
            let connections = ConnectionStore.exists(directory: dir) ? try config.store() : nil
            for (pipeline, name) in used {
                var problem: String?
                if let connections, try connections.list().contains(where: { $0.name == name }) {
                    problem = nil
                } else if let when = try connections?.removal(name) {
                    problem = "connection \(name) was removed (\(when)); sync and schedule skip this pipeline"
                } else {
                    problem = "connection \(name) is not saved in \(FilePaths.shown(dir)) (--config-dir)"
                }
                if let i = pipelines.firstIndex(where: { $0.name == pipeline }) {
                    pipelines[i].connection = name
                    pipelines[i].connectionProblem = problem
                } else {
                    pipelines.append(PipelineStatus(name: pipeline, checkpoint: nil, lastRun: nil, connection: name,
                        connectionProblem: problem))
                }
            }
            pipelines.sort { $0.name < $1.name }
        }

        /// Bytes in the units --max-store-size takes (powers of 1024).
        static func size(_ n: Int) -> String {
            let units = [(40, "T"), (30, "G"), (20, "M"), (10, "K")]
            for (shift, unit) in units where n >= 1 << shift {
                let v = Double(n) / Double(1 << shift)
                return v == v.rounded() ? "\(Int(v))\(unit)" : String(format: "%.1f", v) + unit
            }
            return "\(n) bytes"
        }

        /// The pipeline of a webhook cursor named `webhook/<pipeline>/<url hash>` (the pipeline name may hold `/`).
        static func webhookOwner(_ key: String) -> String {
            let rest = key.dropFirst("webhook/".count)
            guard let slash = rest.lastIndex(of: "/") else { return String(rest) }
            return String(rest[..<slash])
        }

        static func describe(_ c: PanelStore.Checkpoint?) -> String {
            guard let c else { return "no checkpoint (never completed a batch)" }
            if let w = c.watermark { return "watermark \(w)" + (c.watermarkKey.map { " / \($0)" } ?? "") }
            guard let v = c.version else { return "snapshot of a view" }
            return "checkpoint v\(v)" + (c.sourceCreated.map { " (source created \($0))" } ?? "")
        }

        static func text(
            _ s: PanelStore.Statistics, _ pipelines: [PipelineStatus],
            _ webhooks: [(pipeline: String, checkpoint: PanelStore.Checkpoint)], directory: String,
            writer: WriterLock.Holder? = nil, warnings: [String] = [], repairs: [PanelStore.DeliveryRepair] = [],
            activations: [ActivationStatus] = []
        ) -> String {
            var lines = [
                "state      \(directory) (\(size(s.usedBytes)) used; room to grow to \(size(s.mapSize)), --max-store-size)",
                "writer     " + (writer.map { h in
                    "pid \(h.pid.map(String.init) ?? "?")" + (h.command.map { " `\($0)`" } ?? "")
                        + (h.since.map { " since \($0)" } ?? "") + " (a run in progress)"
                } ?? "none (no run in progress)"),
                "panel      \(s.participants) participant(s), \(s.identities) source key(s) (\(s.linkedKeys) linked by "
                    + "email/phone), \(s.conflicts) conflict(s), \(s.events) event(s)",
                "outbox     \(s.outboxSequence) change(s) recorded, \(s.deliveredSequence) delivered in \(s.segments) "
                    + "segment(s), \(s.pendingOutbox) waiting for delivery"
                    + (s.pendingOutbox > 0 ? " (the next run delivers them first)" : ""),
            ]
            lines.append(pipelines.isEmpty ? "pipelines  none yet" : "pipelines")
            for p in pipelines {
                var line = "  \(p.name)  \(describe(p.checkpoint))"
                if let (id, r) = p.lastRun {
                    line += "  last run \(id) \(r.status.rawValue) at \(r.startedAtText)"
                    // A replay (a dry run too) is a run of the pipeline, but not a sync: say which.
                    if r.mode.isReplay || r.mode.isRefresh { line += " (\(r.mode.rawValue))" }
                    if r.status == .running { line += " (pid \(r.processID))" }
                    if r.status == .failed || r.status == .interrupted, let e = r.error {
                        line += "\n      error: " + (e.count > 160 ? String(e.prefix(160)) + "…" : e)
                    }
                }
                if let problem = p.connectionProblem { line += "\n      stopped: \(problem)" }
                lines.append(line)
            }
            if !webhooks.isEmpty { lines.append("webhooks") }
            for w in webhooks {
                let acknowledged = UInt64(max(0, w.checkpoint.tableVersion))
                let owner = webhookOwner(w.pipeline)
                let behind = s.deliveredSequence > acknowledged ? s.deliveredSequence - acknowledged : 0
                lines.append("  sink of \(owner)  acknowledged through change \(acknowledged), \(behind) delivered change(s) "
                    + "not yet acknowledged" + (behind > 0 ? " (resent on the next run)" : ""))
            }
            lines += ActivationStatus.lines(activations)
            for w in warnings { lines.append("warning: \(w)") }
            lines += repairLines(repairs)
            return lines.joined(separator: "\n")
        }

        static func json(
            _ s: PanelStore.Statistics, _ pipelines: [PipelineStatus],
            _ webhooks: [(pipeline: String, checkpoint: PanelStore.Checkpoint)], directory: String,
            writer: WriterLock.Holder? = nil, warnings: [String] = [], repairs: [PanelStore.DeliveryRepair] = [],
            activations: [ActivationStatus] = []
        ) -> [UInt8] {
            var w = JSONWriter()
            w.beginObject()
            w.key("state_dir"); w.string(directory)
            w.key("writer")
            if let writer {
                w.beginObject()
                w.key("pid"); if let pid = writer.pid { w.int(Int64(pid)) } else { w.null() }
                w.key("command"); w.string(writer.command)
                w.key("since"); w.string(writer.since)
                w.endObject()
            } else {
                w.null()
            }
            w.key("used_bytes"); w.int(Int64(s.usedBytes))
            w.key("map_bytes"); w.int(Int64(s.mapSize))
            w.key("participants"); w.int(Int64(s.participants))
            w.key("source_keys"); w.int(Int64(s.identities))
            w.key("linked_keys"); w.int(Int64(s.linkedKeys))
            w.key("conflicts"); w.int(Int64(s.conflicts))
            w.key("events"); w.int(Int64(s.events))
            w.key("outbox_sequence"); w.uint(s.outboxSequence)
            w.key("delivered_sequence"); w.uint(s.deliveredSequence)
            w.key("pending_delivery"); w.int(Int64(s.pendingOutbox))
            w.key("segments"); w.int(Int64(s.segments))
            w.key("pipelines")
            w.beginArray()
            for p in pipelines {
                w.beginObject()
                w.key("name"); w.string(p.name)
                w.key("checkpoint_version"); if let v = p.checkpoint?.version { w.int(v) } else { w.null() }
                w.key("watermark"); w.string(p.checkpoint?.watermark)
                w.key("watermark_key"); w.string(p.checkpoint?.watermarkKey)
                w.key("source_created"); w.string(p.checkpoint?.sourceCreated)
                w.key("last_run_id"); if let id = p.lastRun?.id { w.uint(id) } else { w.null() }
                w.key("last_run_status"); w.string(p.lastRun?.record.status.rawValue)
                w.key("last_run_mode"); w.string(p.lastRun?.record.mode.rawValue)
                w.key("last_run_started_at"); w.string(p.lastRun?.record.startedAtText)
                w.key("last_run_error"); w.string(p.lastRun?.record.error)
                w.key("connection"); w.string(p.connection)
                w.key("connection_problem"); w.string(p.connectionProblem)
                w.endObject()
            }
            w.endArray()
            w.key("webhooks")
            w.beginArray()
            for hook in webhooks {
                w.beginObject()
                w.key("pipeline"); w.string(webhookOwner(hook.pipeline))
                w.key("acknowledged_sequence"); w.int(max(0, hook.checkpoint.tableVersion))
                w.endObject()
            }
            w.endArray()
            w.key("warnings"); w.beginArray(); warnings.forEach { w.string($0) }; w.endArray()
            repairJSON(repairs, &w)
            ActivationStatus.json(activations, &w)
            w.endObject()
            return w.bytes
        }

        // MARK: Delivery repair (what the next run fixes after a delivery killed part-way)

        /// `output` lines: per output directory, what the next run's delivery would repair, or that it is intact.
        static func repairLines(_ repairs: [PanelStore.DeliveryRepair]) -> [String] {
            guard !repairs.isEmpty else { return [] }
            var lines = ["output"]
            for r in repairs {
                let owners = r.pipelines.isEmpty ? "" : " (\(r.pipelines.joined(separator: ", ")))"
                lines.append("  \(r.directory)\(owners)  " + (r.isNeeded
                    ? (r.problem == nil ? "the next run repairs: " : "") + r.items.joined(separator: "; ")
                    : "intact, nothing to repair"))
            }
            return lines
        }

        /// `output_directories`: the same as ``repairLines(_:)``, one object per directory.
        static func repairJSON(_ repairs: [PanelStore.DeliveryRepair], _ w: inout JSONWriter) {
            w.key("output_directories")
            w.beginArray()
            for r in repairs {
                w.beginObject()
                w.key("directory"); w.string(r.directory)
                w.key("pipelines"); w.beginArray(); r.pipelines.forEach { w.string($0) }; w.endArray()
                w.key("repair_needed"); w.bool(r.isNeeded)
                w.key("unrenamed_segment"); w.string(r.unrenamedSegment)
                w.key("leftovers"); w.beginArray(); r.leftovers.forEach { w.string($0) }; w.endArray()
                w.key("manifest"); w.string(r.manifest.rawValue)
                w.key("problem"); w.string(r.problem)
                w.key("repairs"); w.beginArray(); r.items.forEach { w.string($0) }; w.endArray()
                w.endObject()
            }
            w.endArray()
        }
    }
}
