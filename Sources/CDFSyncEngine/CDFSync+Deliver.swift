import CDFSyncClient
import CDFSyncCore
import CDFSyncStorage
import Foundation

/// Delivery at the end of a run: the outbox to segments, then the webhooks.
extension CDFSync {
    func deliver(_ summary: inout SyncSummary) throws {
        // A store opened without per-commit syncs (`sync --durability run`) reaches the disk before any change
        // leaves it: delivered changes are never ahead of the state that produced them.
        if !store.environment.durable { try store.environment.sync() }
        // Also with nothing pending: the store's delivery first repairs what a killed delivery left (a committed
        // segment still under its temporary name, leftovers, a missing or stale manifest); returning early here
        // left a quiet source's output broken until new commits arrived.
        let segmentMax = options.spec?.sinks.first { $0.type == .ndjson }?.segmentMaxBytes ?? 64 << 20
        let outcome = try store.deliver(to: options.outputDirectory, segmentMaxBytes: segmentMax,
            fileMode: options.fileMode)
        if outcome.recordsDelivered > 0 { store.environment.releaseMappedPages() }
        summary.delivered += outcome.recordsDelivered
        summary.outputFiles += outcome.files
        summary.warnings += outcome.repairs.map { "delivery repaired: \($0)" }
        if !outcome.elsewhere.isEmpty {
            summary.warnings.append("delivered \(outcome.elsewhere.count) segment(s) of changes that a run of another "
                + "pipeline of this state directory applied and did not deliver, into that pipeline's directory: "
                + outcome.elsewhere.joined(separator: ", "))
        }
    }

    /// Feeds every webhook sink of the pipeline from the delivered segments (runs also when nothing new was
    /// delivered, to finish batches an earlier run could not send).
    func deliverWebhooks(_ summary: inout SyncSummary) throws {
        let env = ProcessInfo.processInfo.environment
        for sink in options.spec?.sinks ?? [] where sink.type == .webhook {
            guard let url = sink.url else { continue }
            var token: Secret?
            if let name = sink.tokenEnv {
                guard let t = env[name] else {
                    throw SyncError("sinks: environment variable \(name) for the webhook token is not set",
                        remedy: "Export the webhook's bearer token as \(name).")
                }
                token = Secret(t)
            }
            var hook = WebhookSink(url: url, batchSize: sink.batchSize ?? 500, token: token)
            hook.transport.connectTimeout = 10
            hook.transport.requestTimeout = 60
            let event = onEvent
            hook.onRetry = { host, attempt in event(.webhookRetry(host: host, attempt: attempt)) }
            summary.webhookDelivered += try hook.deliver(store: store, pipeline: options.pipeline,
                segmentsDirectory: options.outputDirectory)
        }
    }
}
