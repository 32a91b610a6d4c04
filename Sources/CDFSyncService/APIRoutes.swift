import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import HTTPTypes
import Hummingbird

/// The routes: probes, metrics, the JSON API (docs/serve.md, API), the login page.
extension CDFSyncServer {
    func addRoutes(to router: Router<BasicRequestContext>) {
        router.get("/healthz") { _, _ in JSON.response(["status": "ok"]) }
        router.get("/readyz") { [state] _, _ in
            if state.isStopping { return JSON.response(["status": "stopping"], status: .serviceUnavailable) }
            return state.isReady
                ? JSON.response(["status": "ready"]) : JSON.response(["status": "starting"], status: .serviceUnavailable)
        }
        router.get("/metrics") { _, _ in
            let text = try await blocking { [self] in
                refreshGauges()
                return metrics.render()
            }
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: text)))
        }

        let api = router.group("api")
        api.get("pipelines") { _, _ in
            let views = try await blocking { [self] in try pipelineViews() }
            return JSON.response(["pipelines": views])
        }
        api.get("pipelines/{name}") { _, context in
            let name = try context.parameters.require("name")
            guard let view = try await blocking({ [self] in try pipelineViews(only: name).first }) else {
                return Self.unknownPipeline(name).reply
            }
            return JSON.response(view)
        }
        api.post("pipelines/{name}/run") { _, context in
            let name = try context.parameters.require("name")
            let result = try await blocking { [self] in trigger(name, by: "api") }
            switch result {
            case .accepted(let enqueued):
                return JSON.response(["pipeline": name, "run": enqueued.rawValue], status: .accepted)
            case .unknown:
                return Self.unknownPipeline(name).reply
            case .broken(let error):
                return APIError(.unprocessableContent, "pipeline \(name) does not load: \(error)",
                    remedy: "Fix its file; the service reads it again at the next request.").reply
            case .stopping:
                return APIError(.serviceUnavailable, "the service is shutting down; no new run starts",
                    remedy: "Call again once it has restarted.").reply
            }
        }
        api.get("pipelines/{name}/runs") { request, context in
            let name = try context.parameters.require("name")
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 20, 1), 1_000)
            guard let runs = try await blocking({ [self] in try runRecords(pipeline: name, limit: limit) }) else {
                return Self.unknownPipeline(name).reply
            }
            return JSON.bytes(Self.jsonArray(key: "runs", runs))
        }
        api.get("pipelines/{name}/runs/{id}") { _, context in
            let name = try context.parameters.require("name")
            let id = try context.parameters.require("id", as: UInt64.self)
            guard let record = try await blocking({ [self] in try runRecord(pipeline: name, id: id) }) else {
                return APIError(.notFound, "pipeline \(name) has no run \(id)",
                    remedy: "List its runs: GET /api/pipelines/\(name)/runs.").reply
            }
            return JSON.bytes(record)
        }
        api.get("status") { _, _ in
            let status = try await blocking { [self] in try statusView() }
            return JSON.response(status)
        }
        addLoginRoutes(to: router)
    }

    static func unknownPipeline(_ name: String) -> APIError {
        APIError(.notFound, "no pipeline named \(name) in the pipelines directory",
            remedy: "List them: GET /api/pipelines (a pipeline's name is its file's `name:`).")
    }

    /// `{"<key>": [<doc>, …]}` from documents already encoded.
    static func jsonArray(key: String, _ documents: [[UInt8]]) -> [UInt8] {
        var out = Array("{\"\(key)\":[".utf8)
        for (i, d) in documents.enumerated() {
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += d
        }
        out += Array("]}".utf8)
        return out
    }

    // MARK: What the API reads (blocking: call through `blocking`)

    /// Every pipeline file (or only `only`), with what the service and its state store know of it.
    func pipelineViews(only: String? = nil) throws -> [PipelineView] {
        let entries = catalog.refresh().filter { only == nil || $0.name == only }
        let states = state.all
        let now = Date()
        var views: [PipelineView] = []
        // One look at each state store for the checkpoints and newest runs of its pipelines.
        var byDirectory: [String: [String]] = [:]
        for e in entries { if let spec = e.spec { byDirectory[stateDirectory(of: spec), default: []].append(spec.name) } }
        var checkpoints: [String: PanelStore.Checkpoint] = [:]
        var lastRuns: [String: RunRecord] = [:]
        for (directory, names) in byDirectory {
            let wanted = Set(names)
            let holder = WriterLock.holder(of: directory)
            _ = try slot(directory).withReader { store in
                for (pipeline, c) in try store.checkpoints() where wanted.contains(pipeline) { checkpoints[pipeline] = c }
                for (id, json) in try store.runs(limit: 5_000) where lastRuns.count < wanted.count {
                    guard var r = try? RunRecord(json: json), wanted.contains(r.pipeline), lastRuns[r.pipeline] == nil
                    else { continue }
                    r.runID = id
                    lastRuns[r.pipeline] = r.current(holder: holder)
                }
            }
        }
        for e in entries {
            let s = e.spec.flatMap { states[$0.name] } ?? ServiceState.Pipeline()
            let c = e.spec.flatMap { checkpoints[$0.name] }
            views.append(PipelineView(
                name: e.name, file: e.path, error: e.error, source: e.spec?.source, kind: e.spec?.kind.rawValue,
                mode: e.spec?.mode.rawValue, schedule: e.spec?.schedule?.rawValue,
                stateDir: e.spec.map(stateDirectory(of:)), nextRunAt: s.nextRun, running: s.running,
                runStartedAt: s.runStartedAt, trigger: s.trigger, queued: s.queued,
                checkpoint: c.map { CheckpointView(version: $0.version, watermark: $0.watermark,
                    watermarkKey: $0.watermarkKey, sourceCreated: $0.sourceCreated) },
                lastRun: e.spec.flatMap { lastRuns[$0.name] }.map(RunSummary.init),
                lastOutcome: s.lastOutcome.map { OutcomeView(result: $0.result, runID: $0.runID, endedAt: $0.endedAt,
                    error: $0.error) },
                lastCommitAt: s.lastCommitAt, freshnessSeconds: s.lastCommitAt.map { now.timeIntervalSince($0) },
                commitToDeliverySeconds: s.commitToDelivery,
                warehouse: s.warehouse.map { WarehouseView(id: $0.id, state: $0.state, seenAt: $0.seenAt,
                    error: $0.error) }))
        }
        return views
    }

    /// The newest `limit` run records of a pipeline (as stored, with their current status); nil: no such pipeline.
    func runRecords(pipeline name: String, limit: Int) throws -> [[UInt8]]? {
        guard let spec = catalog.refresh().first(where: { $0.spec?.name == name })?.spec else { return nil }
        let directory = stateDirectory(of: spec)
        let holder = WriterLock.holder(of: directory)
        return try slot(directory).withReader { store in
            var out: [[UInt8]] = []
            for (id, json) in try store.runs(limit: 10_000) where out.count < limit {
                guard var r = try? RunRecord(json: json), r.pipeline == name else { continue }
                r.runID = id
                out.append(try r.current(holder: holder).json())
            }
            return out
        } ?? []
    }

    /// One run record of a pipeline; nil when it has no such run.
    func runRecord(pipeline name: String, id: UInt64) throws -> [UInt8]? {
        guard let spec = catalog.refresh().first(where: { $0.spec?.name == name })?.spec else { return nil }
        let directory = stateDirectory(of: spec)
        let holder = WriterLock.holder(of: directory)
        return try slot(directory).withReader { store -> [UInt8]? in
            guard let json = try store.run(id: id), var r = try? RunRecord(json: json), r.pipeline == name else {
                return nil
            }
            r.runID = id
            return try r.current(holder: holder).json()
        } ?? nil
    }

    /// The service and each state directory.
    func statusView() throws -> StatusView {
        var directories: [StatusView.Directory] = []
        for directory in stateDirectories {
            let holder = WriterLock.holder(of: directory)
            let stats = try slot(directory).withReader { try $0.statistics() }
            directories.append(StatusView.Directory(
                path: directory, exists: stats != nil, participants: stats?.participants,
                sourceKeys: stats?.identities, conflicts: stats?.conflicts,
                outboxSequence: stats?.outboxSequence, deliveredSequence: stats?.deliveredSequence,
                pendingDelivery: stats?.pendingOutbox, usedBytes: stats?.usedBytes,
                writer: holder.map { StatusView.Writer(pid: $0.pid, command: $0.command, since: $0.since) }))
        }
        return StatusView(
            startedAt: state.startedAt, ready: state.isReady, stopping: state.isStopping,
            pipelinesDirectory: catalog.directory, stateDirectories: directories)
    }

    /// The gauges that depend on the clock or the stores: freshness, undelivered changes.
    func refreshGauges() {
        let now = Date()
        for (name, p) in state.all {
            metrics.freshness(pipeline: name, seconds: p.lastCommitAt.map { now.timeIntervalSince($0) })
        }
        for directory in stateDirectories {
            if let pending = try? slot(directory).withReader({ try $0.statistics().pendingOutbox }) {
                metrics.undelivered(stateDirectory: directory, count: pending)
            }
        }
    }
}

/// `GET /api/status`.
struct StatusView: Encodable, Sendable {
    struct Writer: Encodable, Sendable {
        @Null var pid: Int32?
        @Null var command: String?
        @Null var since: String?
    }

    struct Directory: Encodable, Sendable {
        var path: String
        /// Whether a run has created the store yet (the counts are null until then).
        var exists: Bool
        @Null var participants: Int?
        @Null var sourceKeys: Int?
        @Null var conflicts: Int?
        @Null var outboxSequence: UInt64?
        @Null var deliveredSequence: UInt64?
        @Null var pendingDelivery: Int?
        @Null var usedBytes: Int?
        /// The process holding the directory's writer lock (a run in progress), if any.
        @Null var writer: Writer?

        enum CodingKeys: String, CodingKey {
            case path, exists, participants, sourceKeys = "source_keys", conflicts
            case outboxSequence = "outbox_sequence", deliveredSequence = "delivered_sequence"
            case pendingDelivery = "pending_delivery", usedBytes = "used_bytes", writer
        }
    }

    var startedAt: Date
    var ready: Bool
    var stopping: Bool
    var pipelinesDirectory: String
    var stateDirectories: [Directory]

    enum CodingKeys: String, CodingKey {
        case startedAt = "started_at", ready, stopping, pipelinesDirectory = "pipelines_dir"
        case stateDirectories = "state_dirs"
    }
}
