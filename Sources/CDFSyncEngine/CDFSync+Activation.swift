import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Crypto
import Foundation

extension Pipeline {
    /// What an operator confirms with `cdfsync pipeline activate`, in one canonical JSON: the source, the mapping,
    /// the attributes, the consent rule and the whole activation block. A change to any of them makes a
    /// confirmation stale.
    private struct ConfirmedSettings: Encodable {
        var source: String
        var mapping: [String: String]
        var attributes: [Attribute]
        var consent: Consent?
        var activation: Activation
    }

    /// Hex SHA-256 of ``ConfirmedSettings`` (keys sorted, so equal settings hash equally).
    public var activationSettingsHash: String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        let bytes = (try? encoder.encode(ConfirmedSettings(source: source, mapping: mapping, attributes: attributes,
            consent: consent, activation: activation))) ?? Data()
        return Invitations.hex(SHA256.hash(data: bytes))
    }

    /// The activation as the writer applies it; nil for `import` and for events pipelines.
    public var activationSettings: PanelStore.ActivationSettings? {
        guard kind == .participants, let rule = ActivationRule(activation) else { return nil }
        return PanelStore.ActivationSettings(rule: rule, settingsHash: activationSettingsHash)
    }
}

/// Names shared by the invitation files and webhook.
public enum Invitations {
    /// The `Idempotency-Key` of the invitation of participant `participantID` to `target` (its key, `study:S-42`)
    /// decided by `pipeline`: hex SHA-256 of `pipeline`, a newline, the participant id in decimal, a newline, the
    /// target's key. The same for every delivery attempt, ever.
    public static func idempotencyKey(pipeline: String, participantID: UInt64, target: String) -> String {
        let text = "\(pipeline)\n\(participantID)\n\(target)"
        return hex(SHA256.hash(data: Data(text.utf8)))
    }

    /// Lower-case hex of `bytes` (one per invitation delivered: `String(format:)` per byte cost ~30 µs a key).
    static func hex(_ bytes: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(64)
        for b in bytes {
            out.append(digits[Int(b >> 4)])
            out.append(digits[Int(b & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// The directory of `pipeline`'s invitation files: `activation.directory`, else `invitations` inside the
    /// pipeline's output directory.
    public static func directory(for pipeline: Pipeline, outputDirectory: String) -> String {
        pipeline.activation.directory ?? (outputDirectory + "/invitations")
    }
}

/// Delivery of the invitations at the end of a run: the outbox to segments, then the webhook (docs/activation.md).
extension CDFSync {
    /// The activation applied by this run's writer (with its run id), nil for `import`.
    func activationForRun(_ summary: SyncSummary) -> PanelStore.ActivationSettings? {
        guard var a = options.activation else { return nil }
        a.runID = summary.runID
        return a
    }

    /// Before reading: notes the settings the run uses (for `status`) and starts the run's invitation counts.
    func prepareActivation(_ summary: inout SyncSummary) throws {
        guard let spec = options.spec, spec.kind == .participants else { return }
        try store.noteActivation(pipeline: options.pipeline, settings: options.activation)
        guard let settings = options.activation else { return }
        let standing = try store.activationStanding(pipeline: options.pipeline, settings: settings)
        summary.invitations = InvitationCounts(target: settings.target.key, standing: standing.name)
        if !standing.sends {
            summary.warnings.append("invitations held: \(settings.target.description) — \(standing.description)")
        }
    }

    /// Delivers the pipeline's invitation outbox (also when its activation was removed: queued ones are then held).
    func deliverInvitations(_ summary: inout SyncSummary) throws {
        guard let spec = options.spec, spec.kind == .participants else { return }
        let outcome = try store.deliverInvitations(
            pipeline: options.pipeline, settings: options.activation,
            directory: Invitations.directory(for: spec, outputDirectory: options.outputDirectory),
            fileMode: options.fileMode
        ) { pipeline, pid, target in
            Invitations.idempotencyKey(pipeline: pipeline, participantID: pid, target: target)
        }
        summary.warnings += outcome.repairs.map { "invitation delivery repaired: \($0)" }
        guard options.activation != nil || outcome.sent + outcome.withdrawn + outcome.heldBack > 0 else { return }
        var counts = summary.invitations ?? InvitationCounts(target: options.activation?.target.key ?? "",
            standing: outcome.standing.name)
        counts.sent += outcome.sent
        counts.withdrawn += outcome.withdrawn
        counts.heldBack += outcome.heldBack
        counts.files += outcome.files
        summary.invitations = counts
    }

    /// POSTs every invitation the pipeline's segments hold after the webhook's cursor, one request each, with the
    /// invitation's `Idempotency-Key`.
    func deliverInvitationWebhook(_ summary: inout SyncSummary) throws {
        guard let spec = options.spec, spec.kind == .participants, let hook = spec.activation.webhook else { return }
        var token: Secret?
        if let name = hook.tokenEnv {
            guard let t = ProcessInfo.processInfo.environment[name] else {
                throw SyncError("activation.webhook: environment variable \(name) for the webhook token is not set",
                    remedy: "Export the invitation webhook's bearer token as \(name).")
            }
            token = Secret(t)
        }
        var sink = InvitationWebhook(url: hook.url, token: token)
        sink.transport.connectTimeout = 10
        sink.transport.requestTimeout = 60
        let sent = try sink.deliver(store: store, pipeline: options.pipeline,
            directory: Invitations.directory(for: spec, outputDirectory: options.outputDirectory))
        if sent > 0 || summary.invitations != nil {
            var counts = summary.invitations ?? InvitationCounts(target: "", standing: "")
            counts.webhookSent += sent
            summary.invitations = counts
        }
    }
}

/// Follows a pipeline's invitation segments with a cursor (the last invitation sequence the webhook acknowledged,
/// kept in the store) and POSTs each invitation after it as one JSON object, with its `Idempotency-Key`: a receiver
/// that honours the key gets each (participant, target) once, whatever crashes and retries happen in between.
public struct InvitationWebhook: Sendable {
    public var url: String
    public var token: Secret?
    public var retry = RetryPolicy()
    public var transport = TransportOptions()

    public init(url: String, token: Secret? = nil) {
        self.url = url
        self.token = token
    }

    var urlHash: UInt64 {
        var h = StableHash()
        h.combine(Array(url.utf8))
        return h.value
    }

    /// Sends every invitation after the cursor; returns how many were acknowledged.
    public func deliver(store: PanelStore, pipeline: String, directory: String) throws -> Int {
        let changes = WebhookSink(url: url, batchSize: 1, token: token)
        let host = try WebhookSink.checkedURL(url).host
        var cursor = try store.invitationWebhookCursor(pipeline: pipeline, urlHash: urlHash)
        let segments = try store.invitationSegments(pipeline: pipeline).filter { $0.lastSeq > cursor }
        let http = CurlTransport(options: transport)
        var sent = 0
        var hook = changes
        hook.retry = retry
        // The cursor is saved every 100 acknowledged invitations, when the segments are done, and when sending fails:
        // after a crash at most those are sent again, with their keys, which the receiver recognises.
        var saved = cursor
        func save() throws {
            guard cursor != saved else { return }
            try store.setInvitationWebhookCursor(cursor, pipeline: pipeline, urlHash: urlHash)
            saved = cursor
        }
        do {
        for segment in segments {
            guard let path = FilePaths.child(directory, segment.file) else {
                throw SyncError("the store records an invitation segment named \(segment.file.debugDescription), which is "
                    + "not a file name", remedy: "The state store is damaged; resync into a new state directory.")
            }
            guard FileManager.default.fileExists(atPath: path) else {
                throw SyncError("invitation segment \(segment.file) is missing from \(directory), so the webhook cannot be "
                    + "fed past invitation \(cursor)",
                    remedy: "Restore the segment file, or keep invitation segments until the webhook has consumed them.")
            }
            try ZstdFileReader(path: path).forEachLine { line in
                guard !line.isEmpty,
                    let object = try? JSONSerialization.jsonObject(with: Data(line)) as? [String: Any],
                    let seq = (object["seq"] as? NSNumber)?.uint64Value,
                    let key = object["idempotency_key"] as? String
                else {
                    throw SyncError("invitation segment \(segment.file) holds a line that is not an invitation",
                        remedy: "Restore the segment file as delivery wrote it.")
                }
                guard seq > cursor else { return }
                try hook.send(Array(line), key: key, host: host, transport: http)
                cursor = seq
                sent += 1
                if sent % 100 == 0 { try save() }
            }
        }
        } catch {
            try? save()
            throw error
        }
        try save()
        return sent
    }
}
