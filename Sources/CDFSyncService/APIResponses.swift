import CDFSyncClient
import CDFSyncEngine
import Foundation
import HTTPTypes
import Hummingbird

/// An error as the API answers it: `{"error": "...", "remedy": "..."}` with its status.
struct APIError: HTTPResponseError {
    var status: HTTPResponse.Status
    var message: String
    var remedy: String

    init(_ status: HTTPResponse.Status, _ message: String, remedy: String) {
        self.status = status
        self.message = message
        self.remedy = remedy
    }

    var reply: Response { Self.make(status, message, remedy: remedy) }

    func response(from request: Request, context: some RequestContext) throws -> Response { reply }

    static func make(_ status: HTTPResponse.Status, _ message: String, remedy: String) -> Response {
        struct Body: Encodable {
            var error: String
            var remedy: String
        }
        return JSON.response(Body(error: message, remedy: remedy), status: status)
    }

    /// What a call answers for an error of the engine or the client: the message and remedy they carry (they never
    /// hold a secret), with a status that says whose fault it is.
    static func from(_ error: any Error) -> APIError {
        switch error {
        case let e as APIError: return e
        case let e as DatabricksError:
            let status: HTTPResponse.Status = switch e.category {
            case .configuration: .unprocessableContent
            case .authenticationFailed, .permissionDenied, .hostUnreachable, .tls, .warehouseNotFound: .badGateway
            case .catalogNotFound, .schemaNotFound, .tableNotFound, .columnNotFound: .notFound
            default: .badGateway
            }
            return APIError(status, "\(e.category): \(e.message)", remedy: e.remedy)
        case let e as SyncError: return APIError(.unprocessableContent, e.message, remedy: e.remedy)
        case let e as SyncFailure: return from(e.underlying)
        default:
            return APIError(.internalServerError, "\(error)", remedy: "See the service's log; report it if it persists.")
        }
    }
}

/// Answers every error a route throws as `{"error", "remedy"}` JSON (Hummingbird's own errors keep their status).
struct ErrorMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response)
        async throws -> Response
    {
        do {
            return try await next(request, context)
        } catch let e as HTTPError {
            return APIError.make(e.status, e.body ?? "\(e.status.reasonPhrase)",
                remedy: "See docs/serve.md for the API's calls.")
        } catch {
            return APIError.from(error).reply
        }
    }

}

/// JSON responses: keys as declared (snake_case), sorted, `null` for a missing value, dates in ISO 8601.
enum JSON {
    static func encode(_ value: some Encodable) -> [UInt8] {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        encoder.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: "Infinity", negativeInfinity: "-Infinity", nan: "NaN")
        // Every value here is encodable by construction; a failure would be a programming error, answered as 500.
        return (try? Array(encoder.encode(value))) ?? Array(#"{"error":"response could not be encoded"}"#.utf8)
    }

    static func response(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        bytes(encode(value), status: status)
    }

    /// A JSON document already encoded (e.g. a stored run record).
    static func bytes(_ bytes: [UInt8], status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json; charset=utf-8"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }
}

/// Runs blocking work (LMDB reads, file reads, a warehouse request) on a Dispatch thread, off the event loops and
/// the cooperative pool.
func blocking<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(with: Result { try body() })
        }
    }
}

// MARK: - Shapes of the API's answers (docs/serve.md lists each)

/// A pipeline as `GET /api/pipelines` shows it.
struct PipelineView: Encodable, Sendable {
    var name: String
    var file: String
    /// Why the file does not load (it never runs then); nil when it loads.
    var error: String?
    var source: String?
    var kind: String?
    var mode: String?
    var schedule: String?
    var stateDir: String?
    var nextRunAt: Date?
    var running: Bool
    var runStartedAt: Date?
    var trigger: String?
    var queued: Bool
    var checkpoint: CheckpointView?
    /// The newest run record of the pipeline in its state store (as it reads now).
    var lastRun: RunSummary?
    /// How the last run of this process ended (also runs that could not start).
    var lastOutcome: OutcomeView?
    var lastCommitAt: Date?
    var freshnessSeconds: Double?
    var commitToDeliverySeconds: Double?
    var warehouse: WarehouseView?

    enum CodingKeys: String, CodingKey {
        case name, file, error, source, kind, mode, schedule, stateDir = "state_dir", nextRunAt = "next_run_at"
        case running, runStartedAt = "run_started_at", trigger, queued, checkpoint, lastRun = "last_run"
        case lastOutcome = "last_outcome", lastCommitAt = "last_commit_at", freshnessSeconds = "freshness_seconds"
        case commitToDeliverySeconds = "commit_to_delivery_seconds", warehouse
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(name, forKey: .name)
        try c.encode(file, forKey: .file)
        try c.encode(error, forKey: .error)
        try c.encode(source, forKey: .source)
        try c.encode(kind, forKey: .kind)
        try c.encode(mode, forKey: .mode)
        try c.encode(schedule, forKey: .schedule)
        try c.encode(stateDir, forKey: .stateDir)
        try c.encode(nextRunAt, forKey: .nextRunAt)
        try c.encode(running, forKey: .running)
        try c.encode(runStartedAt, forKey: .runStartedAt)
        try c.encode(trigger, forKey: .trigger)
        try c.encode(queued, forKey: .queued)
        try c.encode(checkpoint, forKey: .checkpoint)
        try c.encode(lastRun, forKey: .lastRun)
        try c.encode(lastOutcome, forKey: .lastOutcome)
        try c.encode(lastCommitAt, forKey: .lastCommitAt)
        try c.encode(freshnessSeconds, forKey: .freshnessSeconds)
        try c.encode(commitToDeliverySeconds, forKey: .commitToDeliverySeconds)
        try c.encode(warehouse, forKey: .warehouse)
    }
}

struct CheckpointView: Encodable, Sendable {
    var version: Int64?
    var watermark: String?
    var watermarkKey: String?
    var sourceCreated: String?

    enum CodingKeys: String, CodingKey {
        case version, watermark, watermarkKey = "watermark_key", sourceCreated = "source_created"
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(version, forKey: .version)
        try c.encode(watermark, forKey: .watermark)
        try c.encode(watermarkKey, forKey: .watermarkKey)
        try c.encode(sourceCreated, forKey: .sourceCreated)
    }
}

/// The headline of a run record (the whole record: `GET /api/pipelines/{name}/runs/{id}`).
struct RunSummary: Encodable, Sendable {
    var runID: UInt64
    var status: String
    var mode: String
    var startedAt: String
    var seconds: Double
    var read: String?
    var counts: RunRecord.Counts
    var error: String?

    init(_ r: RunRecord) {
        runID = r.runID
        status = r.status.rawValue
        mode = r.mode.rawValue
        startedAt = r.startedAtText
        seconds = r.seconds
        read = r.readDescription
        counts = r.counts
        error = r.error
    }

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", status, mode, startedAt = "started_at", seconds, read, counts, error
    }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(runID, forKey: .runID)
        try c.encode(status, forKey: .status)
        try c.encode(mode, forKey: .mode)
        try c.encode(startedAt, forKey: .startedAt)
        try c.encode((seconds * 1000).rounded() / 1000, forKey: .seconds)
        try c.encode(read, forKey: .read)
        try c.encode(counts, forKey: .counts)
        try c.encode(error, forKey: .error)
    }
}

struct OutcomeView: Encodable, Sendable {
    var result: String
    var runID: UInt64?
    var endedAt: Date
    var error: String?

    enum CodingKeys: String, CodingKey { case result, runID = "run_id", endedAt = "ended_at", error }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(result, forKey: .result)
        try c.encode(runID, forKey: .runID)
        try c.encode(endedAt, forKey: .endedAt)
        try c.encode(error, forKey: .error)
    }
}

struct WarehouseView: Encodable, Sendable {
    var id: String
    var state: String
    var seenAt: Date
    var error: String?

    enum CodingKeys: String, CodingKey { case id, state, seenAt = "seen_at", error }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(id, forKey: .id)
        try c.encode(state, forKey: .state)
        try c.encode(seenAt, forKey: .seenAt)
        try c.encode(error, forKey: .error)
    }
}
