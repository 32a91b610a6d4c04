import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import HTTPTypes
import Hummingbird
import Synchronization

/// The API behind the console's screens: saved connections (secrets write-only), their test, discovery, drafting a
/// pipeline from `pipeline init`'s suggestions (type checks, preview, save as a file), a pipeline file's text,
/// replays (dry run first), conflicts. docs/serve.md lists each call.
extension CDFSyncServer {
    func addConsoleAPI(to router: Router<BasicRequestContext>) {
        let api = router.group("api")

        // MARK: Connections

        api.get("connections") { _, _ in
            JSON.response(["connections": try await blocking { [self] in try connectionViews() }])
        }
        api.post("connections") { request, _ in
            let body = try await Self.decode(AddConnection.self, request)
            let view = try await blocking { [self] in try addConnection(body) }
            return JSON.response(view, status: .created)
        }
        api.delete("connections/{name}") { _, context in
            let name = try context.parameters.require("name")
            try await blocking { [self] in try connections.store().remove(name) }
            return Response(status: .noContent)
        }
        api.post("connections/{name}/test") { _, context in
            let name = try context.parameters.require("name")
            return JSON.response(try await blocking { [self] in try testConnection(name) })
        }
        api.get("connections/{name}/discovery") { request, context in
            let name = try context.parameters.require("name")
            let catalog = request.uri.queryParameters.get("catalog").map { String($0) }
            let schema = request.uri.queryParameters.get("schema").map { String($0) }
            let result = try await blocking { [self] in
                try Discovery.run(client: client(connection: name), catalog: catalog, schema: schema, details: true)
            }
            return JSON.bytes(result.json())
        }

        // MARK: Drafts: a new pipeline from suggestions

        api.post("drafts") { request, _ in
            let body = try await Self.decode(NewDraft.self, request)
            return JSON.response(try await blocking { [self] in try newDraft(body) }, status: .created)
        }
        api.put("drafts/{id}") { request, context in
            let id = try context.parameters.require("id")
            let body = try await Self.decode(DraftChange.self, request)
            return JSON.response(try await blocking { [self] in try changeDraft(id, body) })
        }
        api.post("drafts/{id}/check") { _, context in
            let id = try context.parameters.require("id")
            return JSON.response(try await blocking { [self] in try checkDraft(id) })
        }
        api.post("drafts/{id}/preview") { _, context in
            let id = try context.parameters.require("id")
            return JSON.response(try await blocking { [self] in try previewDraft(id) })
        }
        api.post("drafts/{id}/save") { request, context in
            let id = try context.parameters.require("id")
            let body = try await Self.decode(SaveDraft.self, request)
            return JSON.response(try await blocking { [self] in try saveDraft(id, overwrite: body.overwrite ?? false) },
                status: .created)
        }

        // MARK: A pipeline's file, replays, conflicts

        api.get("pipelines/{name}/file") { _, context in
            let name = try context.parameters.require("name")
            return JSON.response(try await blocking { [self] in try pipelineFile(name) })
        }
        api.put("pipelines/{name}/file") { request, context in
            let name = try context.parameters.require("name")
            let body = try await Self.decode(PipelineText.self, request)
            return JSON.response(try await blocking { [self] in try writePipelineFile(name, yaml: body.yaml) })
        }
        api.post("pipelines/{name}/replay") { request, context in
            let name = try context.parameters.require("name")
            let body = try await Self.decode(ReplayRequest.self, request)
            return JSON.bytes(try await self.replay(name, body))
        }
        api.get("conflicts") { request, _ in
            let limit = min(max(request.uri.queryParameters.get("limit", as: Int.self) ?? 100, 1), 10_000)
            return JSON.bytes(try await blocking { [self] in try conflicts(limit: limit) })
        }
    }

    /// A JSON request body (at most 1 MB), or 400 naming what is wrong with it.
    static func decode<T: Decodable>(_ type: T.Type, _ request: Request) async throws -> T {
        let body = try await request.body.collect(upTo: 1 << 20)
        do {
            return try JSONDecoder().decode(T.self, from: Data(String(buffer: body).utf8))
        } catch {
            throw APIError(.badRequest, "the request body is not the JSON this call takes: \(RunRecord.unreadable(error))",
                remedy: "See docs/serve.md for the call's body.")
        }
    }

    // MARK: Connections

    struct AddConnection: Decodable, Sendable {
        var name: String
        var host: String
        var warehouseID: String
        var catalog: String?
        var schema: String?
        var auth: String?
        var clientID: String?
        /// Stored encrypted; never returned.
        var secret: String?
        /// Or: the environment variable the secret is read from at each use.
        var secretEnv: String?
        var replace: Bool?

        enum CodingKeys: String, CodingKey {
            case name, host, catalog, schema, auth, secret, replace
            case warehouseID = "warehouse_id", clientID = "client_id", secretEnv = "secret_env"
        }
    }

    struct ConnectionView: Encodable, Sendable {
        var name: String
        var host: String
        var warehouseID: String
        @Null var catalog: String?
        @Null var schema: String?
        var auth: String
        @Null var clientID: String?
        /// `{"kind": "stored"}` or `{"kind": "env", "variable": "X", "set": true}` — where the secret comes from,
        /// never the secret.
        var secret: [String: String]
        /// Pipelines of the directory whose `connection:` names it.
        var pipelines: [String]

        enum CodingKeys: String, CodingKey {
            case name, host, catalog, schema, auth, secret, pipelines
            case warehouseID = "warehouse_id", clientID = "client_id"
        }
    }

    func connectionViews() throws -> [ConnectionView] {
        let users = catalog.refresh().compactMap(\.spec)
        let env = ProcessInfo.processInfo.environment
        return try connections.store().list().map { c in
            let secret: [String: String] = switch c.secret {
            case .encrypted: ["kind": "stored"]
            case .environment(let v): ["kind": "env", "variable": v, "set": env[v].map { $0.isEmpty ? "false" : "true" } ?? "false"]
            }
            return ConnectionView(name: c.name, host: c.host, warehouseID: c.warehouseID, catalog: c.catalog,
                schema: c.schema, auth: c.auth.rawValue, clientID: c.clientID, secret: secret,
                pipelines: users.filter { $0.connection.name == c.name }.map(\.name).sorted())
        }
    }

    func addConnection(_ body: AddConnection) throws -> ConnectionView {
        guard let auth = SavedConnection.AuthKind(rawValue: body.auth ?? "pat") else {
            throw APIError(.badRequest, "auth must be pat or oauth-m2m", remedy: "Choose how the connection signs in.")
        }
        let given = body.secret.flatMap { $0.isEmpty ? nil : $0 }
        let source: SavedConnection.SecretSource
        switch (given, body.secretEnv.flatMap { $0.isEmpty ? nil : $0 }) {
        case (.some, .some):
            throw APIError(.badRequest, "give a secret or an environment variable, not both",
                remedy: "A stored secret is encrypted in the config directory; a variable is read at each use.")
        case (.some, nil): source = .encrypted
        case (nil, .some(let v)): source = .environment(v)
        case (nil, nil):
            throw APIError(.badRequest, "no secret: give the token (or client secret), or the environment variable that holds it",
                remedy: "The secret is stored encrypted and never shown again.")
        }
        let connection = try SavedConnection(name: body.name, host: body.host, warehouseID: body.warehouseID,
            catalog: body.catalog.flatMap { $0.isEmpty ? nil : $0 }, schema: body.schema.flatMap { $0.isEmpty ? nil : $0 },
            auth: auth, clientID: body.clientID, secret: source)
        try connections.store().add(connection, secret: given.map(Secret.init), replace: body.replace ?? false)
        return try connectionViews().first { $0.name == connection.name }!
    }

    /// `cdfsync connection test`'s steps, with the failure's category and remedy.
    func testConnection(_ name: String) throws -> TestView {
        let settings = try connections.store().resolve(name)
        var tester = ConnectionTester(settings: settings)
        tester.statementDeadline = 120
        let report = tester.run()
        return TestView(
            passed: report.passed,
            steps: report.checks.map { .init(step: $0.step.rawValue, passed: $0.passed, detail: $0.detail,
                milliseconds: $0.milliseconds) },
            failure: report.failure.map { .init(category: "\($0.category)", message: $0.message, remedy: $0.remedy) },
            remaining: ConnectionCheck.Step.allCases.dropFirst(report.checks.count).map(\.rawValue))
    }

    struct TestView: Encodable, Sendable {
        struct Step: Encodable, Sendable {
            var step: String
            var passed: Bool
            var detail: String
            var milliseconds: Int
        }
        struct Failure: Encodable, Sendable {
            var category: String
            var message: String
            var remedy: String
        }
        var passed: Bool
        var steps: [Step]
        @Null var failure: Failure?
        /// Steps that did not run (after the failure).
        var remaining: [String]

        enum CodingKeys: String, CodingKey { case passed, steps, failure, remaining }
    }

    /// A statement client for a saved connection, stopped with the service.
    func client(connection name: String) throws -> StatementClient {
        let client = StatementClient(settings: try connections.store().resolve(name))
        client.isCancelled = { [state] in state.isStopping }
        return client
    }

    // MARK: Drafts

    struct NewDraft: Decodable, Sendable {
        var connection: String
        var source: String
        var kind: String?
        var name: String?
    }

    struct DraftChange: Decodable, Sendable {
        var name: String?
        /// Field → column; an empty column leaves the field unmapped.
        var mapping: [String: String]?
        /// `15m`, `hourly`, `daily`, or empty for none.
        var schedule: String?
    }

    struct SaveDraft: Decodable, Sendable {
        var overwrite: Bool?
    }

    /// A draft as the editor shows it: the fields with their suggested column, status, reason and candidates; the
    /// source's columns and types; the YAML the file would hold.
    struct DraftView: Encodable, Sendable {
        struct Field: Encodable, Sendable {
            var field: String
            var status: String
            var column: String?
            var reason: String
            var candidates: [String]
        }
        struct Column: Encodable, Sendable {
            var name: String
            var type: String
        }
        var id: String
        var name: String
        var source: String
        var connection: String
        var mode: String
        var schedule: String?
        var fields: [Field]
        var columns: [Column]
        var consent: String?
        var yaml: String
        var file: String
        var exists: Bool
    }

    func newDraft(_ body: NewDraft) throws -> DraftView {
        let source = try QualifiedName(parsing: body.source)
        let kind = Pipeline.Kind(rawValue: body.kind ?? "participants") ?? .participants
        let suggestion = try SourceProfiler.suggest(client: client(connection: body.connection), source: source,
            options: .init(kind: kind, name: body.name), sampleRows: SourceProfiler.defaultSampleRows)
        let outputRoot = URL(fileURLWithPath: configuration.stateDirectory).standardizedFileURL
            .deletingLastPathComponent().appendingPathComponent("out").path
        let id = drafts.add(Draft(connection: body.connection, suggestion: suggestion, schedule: nil,
            outputRoot: outputRoot))
        return try draftView(id)
    }

    func changeDraft(_ id: String, _ change: DraftChange) throws -> DraftView {
        try drafts.update(id) { d in
            if let name = change.name, !name.isEmpty {
                if let problem = Pipeline.nameProblem(name, maxBytes: PipelineLoader.maxNameBytes) {
                    throw APIError(.badRequest, "name \(problem)", remedy: "Use letters, digits, - and _.")
                }
                d.suggestion.name = name
            }
            for (field, column) in change.mapping ?? [:] {
                guard let i = d.suggestion.fields.firstIndex(where: { $0.field == field }) else {
                    throw APIError(.badRequest, "\(field) is not a field of a \(d.suggestion.kind.rawValue) pipeline",
                        remedy: "Map one of: \(d.suggestion.fields.map(\.field).joined(separator: ", ")).")
                }
                let chosen = column.isEmpty ? nil : column
                // Only a change is a choice: a field left as suggested keeps its status and reason.
                guard chosen != d.suggestion.fields[i].column else { continue }
                d.suggestion.fields[i].column = chosen
                d.suggestion.fields[i].status = chosen == nil ? .notFound : .suggested
                d.suggestion.fields[i].reason = chosen == nil ? "left unmapped in the console" : "chosen in the console"
            }
            if let s = change.schedule {
                guard s.isEmpty || Pipeline.Schedule(rawValue: s) != nil else {
                    throw APIError(.badRequest, "schedule must be 15m, hourly or daily", remedy: "Or none.")
                }
                d.schedule = s.isEmpty ? nil : Pipeline.Schedule(rawValue: s)
            }
        }
        return try draftView(id)
    }

    func draftView(_ id: String) throws -> DraftView {
        let d = try drafts.get(id)
        let s = d.suggestion
        let file = catalog.directory + "/" + s.name + ".yaml"
        let columns = s.fields.flatMap(\.candidates).map { DraftView.Column(name: $0.column, type: $0.type) }
        var seen: Set<String> = []
        return DraftView(
            id: id, name: s.name, source: s.source.description, connection: d.connection, mode: s.mode.mode.rawValue,
            schedule: d.schedule?.rawValue,
            fields: s.fields.map { f in
                .init(field: f.field, status: f.status.rawValue, column: f.column, reason: f.reason,
                    candidates: f.candidates.map(\.column))
            },
            columns: columns.filter { seen.insert($0.name).inserted }.sorted { $0.name < $1.name },
            consent: s.consent?.column, yaml: d.yaml, file: file,
            exists: FileManager.default.fileExists(atPath: file))
    }

    /// The draft's file loaded as a pipeline, and its live checks (`pipeline validate`: visibility, every mapped
    /// column and its type, the mode).
    func checkDraft(_ id: String) throws -> CheckView {
        let d = try drafts.get(id)
        let spec: Pipeline
        do {
            spec = try PipelineLoader.load(yaml: d.yaml, origin: d.suggestion.name + ".yaml")
        } catch {
            return CheckView(loads: false, problems: ["\(error)"], findings: [])
        }
        // Validation reads only the warehouse; the engine wants a store, so it gets a scratch one.
        let scratch = NSTemporaryDirectory() + "cdfsync-check-" + UUID().uuidString
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        let findings = try {
            let store = try PanelStore(directory: scratch, durable: false, mapSize: 16 << 20)
            let sync = CDFSync(client: try client(connection: d.connection), store: store,
                options: try SyncOptions(pipeline: spec))
            return sync.validateLive()
        }()
        return CheckView(loads: true, problems: [],
            findings: findings.map { .init(field: $0.field, ok: $0.ok, message: $0.message) })
    }

    struct CheckView: Encodable, Sendable {
        struct Finding: Encodable, Sendable {
            var field: String
            var ok: Bool
            var message: String
        }
        var loads: Bool
        var problems: [String]
        var findings: [Finding]
        var ok: Bool { loads && findings.allSatisfy(\.ok) }

        enum CodingKeys: String, CodingKey { case loads, problems, findings, ok }

        func encode(to encoder: any Encoder) throws {
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(loads, forKey: .loads)
            try c.encode(problems, forKey: .problems)
            try c.encode(findings, forKey: .findings)
            try c.encode(ok, forKey: .ok)
        }
    }

    /// `pipeline preview`: the draft's query on the source's current data, 20 rows as the sync would map them.
    func previewDraft(_ id: String) throws -> PreviewView {
        let d = try drafts.get(id)
        let spec = try PipelineLoader.load(yaml: d.yaml, origin: d.suggestion.name + ".yaml")
        let p = try PipelinePreview.run(client: client(connection: d.connection), pipeline: spec, limit: 20)
        return PreviewView(sql: p.sql, columns: p.columns, rows: p.rows.map { r in
            let record = r.record.flatMap { try? JSONSerialization.jsonObject(with: Data($0)) as? [String: Any] }
                .map { $0.mapValues { "\($0)" } }
            switch r.outcome {
            case .participant(let id): return .init(outcome: "participant", id: id, reason: nil, record: record)
            case .notOptedIn(let id): return .init(outcome: "not_opted_in", id: id, reason: nil, record: record)
            case .event(let id): return .init(outcome: "event", id: id, reason: nil, record: record)
            case .invalid(let why): return .init(outcome: "invalid", id: nil, reason: why, record: nil)
            }
        })
    }

    struct PreviewView: Encodable, Sendable {
        struct Row: Encodable, Sendable {
            var outcome: String
            @Null var id: String?
            @Null var reason: String?
            @Null var record: [String: String]?

            enum CodingKeys: String, CodingKey { case outcome, id, reason, record }
        }
        var sql: String
        var columns: [String]
        var rows: [Row]
    }

    /// Writes the draft as `<pipelines dir>/<name>.yaml` (0600): from then on the file is the pipeline.
    func saveDraft(_ id: String, overwrite: Bool) throws -> [String: String] {
        let d = try drafts.get(id)
        do {
            _ = try PipelineLoader.load(yaml: d.yaml, origin: d.suggestion.name + ".yaml")
        } catch {
            throw APIError(.unprocessableContent, "the draft does not load as a pipeline: \(error)",
                remedy: "Map the fields it names (the external id at least), then save again.")
        }
        let file = catalog.directory + "/" + d.suggestion.name + ".yaml"
        if !overwrite, FileManager.default.fileExists(atPath: file) {
            throw APIError(.conflict, "\(FilePaths.shown(file)) already exists",
                remedy: "Give the draft another name, or save with overwrite.")
        }
        try PrivateFiles.write(Array(d.yaml.utf8), to: file)
        catalog.refresh()
        return ["file": file, "pipeline": d.suggestion.name]
    }

    // MARK: A pipeline's file

    func pipelineFile(_ name: String) throws -> [String: String] {
        guard let entry = catalog.refresh().first(where: { $0.name == name }) else { throw Self.unknownPipeline(name) }
        let text = try String(contentsOfFile: entry.path, encoding: .utf8)
        return ["file": entry.path, "yaml": text]
    }

    /// Replaces a pipeline's file after checking the new text loads as a pipeline of the same name.
    func writePipelineFile(_ name: String, yaml: String) throws -> [String: String] {
        guard let entry = catalog.refresh().first(where: { $0.name == name }) else { throw Self.unknownPipeline(name) }
        let spec: Pipeline
        do {
            spec = try PipelineLoader.load(yaml: yaml, origin: FilePaths.shown(entry.path))
        } catch {
            throw APIError(.unprocessableContent, "\(error)", remedy: "Fix the text; the file was not changed.")
        }
        guard spec.name == name else {
            throw APIError(.unprocessableContent, "the text names pipeline '\(spec.name)', not '\(name)'",
                remedy: "A pipeline's name is its state key: create a new pipeline for another name.")
        }
        try PrivateFiles.write(Array(yaml.utf8), to: entry.path)
        catalog.refresh()
        return ["file": entry.path, "pipeline": name]
    }

    struct PipelineText: Decodable, Sendable { var yaml: String }

    // MARK: Replays

    struct ReplayRequest: Decodable, Sendable {
        var fromVersion: Int64
        var toVersion: Int64?
        var dryRun: Bool

        enum CodingKeys: String, CodingKey { case fromVersion = "from_version", toVersion = "to_version", dryRun = "dry_run" }
    }

    /// Runs a replay (a dry run writes nothing but its record) on the pipeline's state directory's worker, after
    /// the run in progress; answers its record.
    func replay(_ name: String, _ body: ReplayRequest) async throws -> [UInt8] {
        guard let spec = catalog.pipeline(named: name)?.spec else { throw Self.unknownPipeline(name) }
        guard body.fromVersion >= 0, body.toVersion.map({ $0 >= body.fromVersion }) ?? true else {
            throw APIError(.badRequest, "from_version must be 0 or more and to_version at or above it",
                remedy: "Give the versions to read again.")
        }
        let worker = worker(stateDirectory(of: spec))
        let result: Result<RunRecord, any Error> = await withCheckedContinuation { continuation in
            let accepted = worker.enqueueJob { [self] in
                continuation.resume(returning: runner(stateDirectory(of: spec)).replay(spec,
                    ReplayOptions(fromVersion: body.fromVersion, toVersion: body.toVersion, dryRun: body.dryRun)))
            }
            if !accepted {
                continuation.resume(returning: .failure(APIError(.serviceUnavailable, "the service is shutting down",
                    remedy: "Replay once it has restarted.")))
            }
        }
        switch result {
        case .success(let record): return try record.json()
        case .failure(let failure as SyncFailure): return try failure.summary.json()
        case .failure(let error as APIError): throw error
        case .failure(let error):
            throw APIError(.unprocessableContent, "\(error)", remedy: "Check the versions and the pipeline.")
        }
    }

    // MARK: Conflicts

    /// Each state directory's recorded identity conflicts (newest first), as stored.
    func conflicts(limit: Int) throws -> [UInt8] {
        var out = Array(#"{"state_dirs":["#.utf8)
        for (i, directory) in stateDirectories.enumerated() {
            let records = try slot(directory).withReader { try $0.conflicts(limit: limit) } ?? []
            if i > 0 { out.append(UInt8(ascii: ",")) }
            out += Array("{\"path\":".utf8) + JSON.encode(directory) + Array(",".utf8)
            out += Self.jsonArray(key: "conflicts", records).dropFirst().dropLast()
            out.append(UInt8(ascii: "}"))
        }
        out += Array("]}".utf8)
        return out
    }
}

/// Drafts of new pipelines, in memory (a restart drops them; saved drafts are files).
final class Drafts: Sendable {
    private let all = Mutex<[String: Draft]>([:])

    func add(_ draft: Draft) -> String {
        let id = UUID().uuidString.lowercased()
        all.withLock { $0[id] = draft }
        return id
    }

    func get(_ id: String) throws -> Draft {
        guard let d = all.withLock({ $0[id] }) else {
            throw APIError(.notFound, "no draft \(id)", remedy: "Start a new pipeline from the discovery tree.")
        }
        return d
    }

    func update(_ id: String, _ body: (inout Draft) throws -> Void) throws {
        try all.withLock { all in
            guard var d = all[id] else {
                throw APIError(.notFound, "no draft \(id)", remedy: "Start a new pipeline from the discovery tree.")
            }
            try body(&d)
            all[id] = d
        }
    }
}

struct Draft: Sendable {
    var connection: String
    var suggestion: PipelineSuggestion
    var schedule: Pipeline.Schedule?
    /// Where the pipeline's changes are delivered: `<output root>/<name>` (an absolute path: the service's working
    /// directory is nobody's business).
    var outputRoot: String

    /// The file the draft would be: `pipeline init`'s text for the choices made, with its output directory and
    /// schedule.
    var yaml: String {
        var text = suggestion.yaml(connection: Pipeline.ConnectionRef(name: connection))
        let output = outputRoot + "/" + suggestion.name
        text = text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            guard line.hasPrefix("    directory: "), line.contains(".cdfsync/out/") else { return String(line) }
            return "    directory: " + String(decoding: JSON.encode(output), as: UTF8.self)
        }.joined(separator: "\n")
        if let schedule, let range = text.range(of: "# schedule: hourly") {
            let lineEnd = text[range.upperBound...].firstIndex(of: "\n") ?? text.endIndex
            text.replaceSubrange(range.lowerBound..<lineEnd, with: "schedule: \(schedule.rawValue)")
        }
        return text
    }
}

/// The saved connections of the config directory, opened once (LMDB allows one open per process) and shared by
/// the API and the runs.
final class SavedConnections: Sendable {
    let directory: String
    private let opened = Mutex<ConnectionStore?>(nil)

    init(directory: String) { self.directory = directory }

    func store() throws -> ConnectionStore {
        try opened.withLock { s in
            if let s { return s }
            let store = try ConnectionStore(directory: directory)
            s = store
            return store
        }
    }
}
