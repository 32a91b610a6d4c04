import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import Foundation
import HTTPTypes
import Hummingbird

/// The console's activation calls (docs/serve.md, Activation): the preview `cdfsync pipeline activate` shows before
/// it asks, the confirmation and the deactivation it records, and the invitation ledger `cdfsync invitations` lists.
extension CDFSyncServer {
    func addActivationAPI(to router: Router<BasicRequestContext>) {
        let api = router.group("api")
        api.get("pipelines/{name}/activation") { request, context in
            let name = try context.parameters.require("name")
            let rows = request.uri.queryParameters.get("sample_rows", as: Int.self) ?? 100
            guard (0...10_000).contains(rows) else {
                throw APIError(.badRequest, "sample_rows must be 0…10000; got \(rows)",
                    remedy: "0 skips the source part (the warehouse is not contacted).")
            }
            return JSON.response(try await blocking { [self] in try activationPreview(name, sampleRows: rows) })
        }
        api.post("pipelines/{name}/activation/confirm") { request, context in
            let name = try context.parameters.require("name")
            let body = try await Self.decode(ConfirmActivation.self, request)
            return JSON.response(try await blocking { [self] in try confirmActivation(name, body) })
        }
        api.post("pipelines/{name}/activation/deactivate") { _, context in
            let name = try context.parameters.require("name")
            return JSON.response(try await blocking { [self] in try deactivateActivation(name) })
        }
        api.get("pipelines/{name}/invitations") { request, context in
            let name = try context.parameters.require("name")
            let q = request.uri.queryParameters
            let limit = min(max(q.get("limit", as: Int.self) ?? 100, 1), 10_000)
            let offset = max(q.get("offset", as: Int.self) ?? 0, 0)
            var only: PanelStore.Invitation.State?
            if let s = q.get("state") {
                guard let state = PanelStore.Invitation.State(rawValue: String(s)) else {
                    throw APIError(.badRequest, "state must be sent, queued, held, withdrawn or dropped; got \(s)",
                        remedy: "Leave it out to list every entry.")
                }
                only = state
            }
            let state = only
            return JSON.bytes(try await blocking { [self] in
                try invitationPage(name, state: state, offset: offset, limit: limit)
            })
        }
    }

    /// Who the console records as confirming or deactivating: the OS user of the serve process, marked as the
    /// console's (the console's sign-in is one shared token, not a person).
    static var consoleOperator: String { operatorName() + " (console)" }

    /// A loaded pipeline of the directory, or 404 / 422.
    func loadedPipeline(_ name: String) throws -> Pipeline {
        guard let entry = catalog.refresh().first(where: { $0.name == name || $0.spec?.name == name }) else {
            throw Self.unknownPipeline(name)
        }
        guard let spec = entry.spec else {
            throw APIError(.unprocessableContent, "pipeline \(name) does not load: \(entry.error ?? "")",
                remedy: "Fix its file; the service reads it again at the next request.")
        }
        return spec
    }

    /// A store of the pipeline's state directory opened as the writer (after the run in progress there), or 409
    /// when another process holds the directory.
    func withWriterStore<T>(_ spec: Pipeline, _ body: (PanelStore) throws -> T) throws -> T {
        do {
            return try slot(stateDirectory(of: spec)).withWriter(body)
        } catch let e as StorageError where e.code == .inUse {
            throw APIError(.conflict, "the state directory of pipeline \(spec.name) is in use by another process: \(e)",
                remedy: "Try again once that process (a sync or schedule) has finished.")
        }
    }

    // MARK: Preview

    struct ActivationSample: Encodable, Sendable {
        var externalID: String
        @Null var participantID: UInt64?
        var contact: String

        enum CodingKeys: String, CodingKey { case externalID = "external_id", participantID = "participant_id", contact }

        init(_ s: ActivationPreview.Sample) {
            externalID = s.externalID
            participantID = s.participantID
            contact = s.contact
        }
    }

    struct StandingView: Encodable, Sendable {
        /// `not_required`, `confirmed`, `unconfirmed`, `stale`, `deactivated`.
        var state: String
        var sends: Bool
        var description: String
        /// The recorded confirmation or deactivation (null when there is none).
        @Null var by: String?
        @Null var host: String?
        @Null var at: String?
        @Null var settingsHash: String?

        enum CodingKeys: String, CodingKey {
            case state, sends, description, by, host, at, settingsHash = "settings_hash"
        }

        init(_ s: PanelStore.ActivationStanding) {
            state = s.name
            sends = s.sends
            description = s.description
            let recorded: PanelStore.ActivationConfirmation? = switch s {
            case .confirmed(let c), .stale(let c), .deactivated(let c): c
            case .notRequired, .unconfirmed: nil
            }
            by = recorded?.by
            host = recorded?.host
            at = recorded?.at
            settingsHash = recorded?.settingsHash
        }
    }

    struct ActivationPreviewView: Encodable, Sendable {
        struct Target: Encodable, Sendable {
            var key: String
            var description: String
            var requiresConfirmation: Bool
            enum CodingKeys: String, CodingKey {
                case key, description, requiresConfirmation = "requires_confirmation"
            }
        }

        struct Held: Encodable, Sendable {
            var wouldSend: Int
            var sample: [ActivationSample]
            var excluded: Int
            var excludedReasons: [String: Int]
            enum CodingKeys: String, CodingKey {
                case wouldSend = "would_send", sample, excluded, excludedReasons = "excluded_reasons"
            }
        }

        struct Source: Encodable, Sendable {
            var rowsRead: Int
            var limit: Int
            var wouldInvite: Int
            var sample: [ActivationSample]
            var alreadyInvited: Int
            var alreadyHeld: Int
            var alreadyInPanel: Int
            var excluded: Int
            var excludedReasons: [String: Int]
            enum CodingKeys: String, CodingKey {
                case rowsRead = "rows_read", limit, wouldInvite = "would_invite", sample
                case alreadyInvited = "already_invited", alreadyHeld = "already_held"
                case alreadyInPanel = "already_in_panel", excluded, excludedReasons = "excluded_reasons"
            }
        }

        var pipeline: String
        var target: Target
        var settingsHash: String
        var standing: StandingView
        var held: Held
        @Null var source: Source?
        /// The preview as `cdfsync pipeline activate` prints it.
        var text: String

        enum CodingKeys: String, CodingKey {
            case pipeline, target, settingsHash = "settings_hash", standing, held, source, text
        }

        init(_ p: ActivationPreview) {
            pipeline = p.pipeline
            target = Target(key: p.target.key, description: p.target.description,
                requiresConfirmation: p.target.requiresConfirmation)
            settingsHash = p.settingsHash
            standing = StandingView(p.standing)
            held = Held(wouldSend: p.heldToSend, sample: p.heldSample.map(ActivationSample.init),
                excluded: p.heldDropped.values.reduce(0, +), excludedReasons: p.heldDropped)
            source = p.source.map { s in
                Source(rowsRead: s.rowsRead, limit: s.limit, wouldInvite: s.wouldInvite, sample: s.sample.map(ActivationSample.init),
                    alreadyInvited: s.alreadyInvited, alreadyHeld: s.alreadyHeld, alreadyInPanel: s.alreadyInPanel,
                    excluded: s.excluded.values.reduce(0, +), excludedReasons: s.excluded)
            }
            text = p.render()
        }
    }

    /// `cdfsync pipeline activate`'s preview (``ActivationPreview/build(store:pipeline:client:sampleRows:)``), read
    /// from the pipeline's state store (none yet: nothing held) and, unless `sampleRows` is 0, a sample of its source.
    func activationPreview(_ name: String, sampleRows: Int) throws -> ActivationPreviewView {
        let spec = try loadedPipeline(name)
        guard spec.activationSettings != nil else { throw Self.noActivation(spec) }
        var client: StatementClient?
        if sampleRows > 0 {
            let c = StatementClient(settings: try runner(stateDirectory(of: spec)).settingsFor(spec))
            c.isCancelled = { [state] in state.isStopping }
            client = c
        }
        let preview = try slot(stateDirectory(of: spec)).withReader { store in
            try ActivationPreview.build(store: store, pipeline: spec, client: client, sampleRows: sampleRows)
        } ?? ActivationPreview.build(store: nil, pipeline: spec, client: client, sampleRows: sampleRows)
        return ActivationPreviewView(preview)
    }

    static func noActivation(_ spec: Pipeline) -> APIError {
        APIError(.unprocessableContent, "pipeline \(spec.name) has no activation to confirm (activation: import)",
            remedy: "Give it an activation (pool, invite_study or invite_task) in its file; see docs/activation.md.")
    }

    // MARK: Confirm, deactivate

    struct ConfirmActivation: Decodable, Sendable {
        /// The settings hash of the preview the operator confirmed: refused when the pipeline's settings differ now.
        var settingsHash: String
        enum CodingKeys: String, CodingKey { case settingsHash = "settings_hash" }
    }

    struct ConfirmedView: Encodable, Sendable {
        var pipeline: String
        var standing: StandingView
        /// Held invitations queued for the next run (still eligible), and those dropped by reason.
        var released: Int
        var dropped: [String: Int]
    }

    /// Records the confirmation as `cdfsync pipeline activate` does (who, host, when, the settings' hash) and releases
    /// the held invitations; the next run sends them.
    func confirmActivation(_ name: String, _ body: ConfirmActivation) throws -> ConfirmedView {
        let spec = try loadedPipeline(name)
        guard let settings = spec.activationSettings else { throw Self.noActivation(spec) }
        guard body.settingsHash == settings.settingsHash else {
            throw APIError(.conflict, "the activation settings of pipeline \(name) changed since the preview "
                + "(sha256 \(body.settingsHash.prefix(16))… previewed, \(settings.settingsHash.prefix(16))… now)",
                remedy: "Look at the preview again and confirm what it shows now.")
        }
        return try withWriterStore(spec) { store in
            let outcome = try store.confirmActivation(pipeline: spec.name, settings: settings, by: Self.consoleOperator,
                host: ProcessInfo.processInfo.hostName)
            return ConfirmedView(pipeline: spec.name,
                standing: StandingView(try store.activationStanding(pipeline: spec.name, settings: settings)),
                released: outcome.released, dropped: outcome.dropped)
        }
    }

    struct DeactivatedView: Encodable, Sendable {
        var pipeline: String
        var standing: StandingView
        /// Queued invitations not yet sent, held again.
        var held: Int
    }

    /// Records a deactivation as `cdfsync pipeline deactivate` does; queued invitations go back to held.
    func deactivateActivation(_ name: String) throws -> DeactivatedView {
        let spec = try loadedPipeline(name)
        return try withWriterStore(spec) { store in
            let held = try store.deactivateActivation(pipeline: spec.name, target: spec.activation.target?.key ?? "",
                by: Self.consoleOperator, host: ProcessInfo.processInfo.hostName)
            return DeactivatedView(pipeline: spec.name,
                standing: StandingView(try store.activationStanding(pipeline: spec.name, settings: spec.activationSettings)),
                held: held)
        }
    }

    // MARK: Invitations

    /// One page of the pipeline's invitation ledger, each entry as `cdfsync invitations --json` prints it, with the
    /// count of every state.
    func invitationPage(_ name: String, state only: PanelStore.Invitation.State?, offset: Int, limit: Int) throws
        -> [UInt8]
    {
        let spec = try loadedPipeline(name)
        let page = try slot(stateDirectory(of: spec)).withReader {
            try $0.invitationPage(pipeline: spec.name, state: only, offset: offset, limit: limit)
        }
        var counts: [String: Int] = [:]
        for s in PanelStore.Invitation.State.allCases { counts[s.rawValue] = page?.counts[s] ?? 0 }
        var out = Array("{\"pipeline\":".utf8) + JSON.encode(spec.name)
        out += Array(",\"total\":\(page?.matching ?? 0),\"offset\":\(offset),\"limit\":\(limit),\"counts\":".utf8)
        out += JSON.encode(counts)
        out += Array(",".utf8) + Self.jsonArray(key: "invitations", (page?.entries ?? []).map { $0.json() }).dropFirst()
        return out
    }
}
