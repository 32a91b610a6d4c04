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

/// An optional an API response writes as `null` when it has no value: every documented key is always present. (The
/// synthesized `Encodable` leaves a nil optional's key out; a wrapped property is encoded through this instead.)
@propertyWrapper
struct Null<Value: Encodable & Sendable>: Encodable, Sendable {
    var wrappedValue: Value?

    init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }

    func encode(to encoder: any Encoder) throws {
        var c = encoder.singleValueContainer()
        if let wrappedValue { try c.encode(wrappedValue) } else { try c.encodeNil() }
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
    @Null var error: String?
    @Null var source: String?
    @Null var kind: String?
    @Null var mode: String?
    @Null var schedule: String?
    @Null var stateDir: String?
    @Null var nextRunAt: Date?
    var running: Bool
    @Null var runStartedAt: Date?
    @Null var trigger: String?
    var queued: Bool
    @Null var checkpoint: CheckpointView?
    /// The newest run record of the pipeline in its state store (as it reads now).
    @Null var lastRun: RunSummary?
    /// How the last run of this process ended (also runs that could not start).
    @Null var lastOutcome: OutcomeView?
    @Null var lastCommitAt: Date?
    @Null var freshnessSeconds: Double?
    @Null var commitToDeliverySeconds: Double?
    @Null var warehouse: WarehouseView?

    enum CodingKeys: String, CodingKey {
        case name, file, error, source, kind, mode, schedule, stateDir = "state_dir", nextRunAt = "next_run_at"
        case running, runStartedAt = "run_started_at", trigger, queued, checkpoint, lastRun = "last_run"
        case lastOutcome = "last_outcome", lastCommitAt = "last_commit_at", freshnessSeconds = "freshness_seconds"
        case commitToDeliverySeconds = "commit_to_delivery_seconds", warehouse
    }
}

struct CheckpointView: Encodable, Sendable {
    @Null var version: Int64?
    @Null var watermark: String?
    @Null var watermarkKey: String?
    @Null var sourceCreated: String?

    enum CodingKeys: String, CodingKey {
        case version, watermark, watermarkKey = "watermark_key", sourceCreated = "source_created"
    }
}

/// The headline of a run record (the whole record: `GET /api/pipelines/{name}/runs/{id}`).
struct RunSummary: Encodable, Sendable {
    var runID: UInt64
    var status: String
    var mode: String
    var startedAt: String
    var seconds: Double
    @Null var read: String?
    var counts: RunRecord.Counts
    @Null var error: String?

    init(_ r: RunRecord) {
        runID = r.runID
        status = r.status.rawValue
        mode = r.mode.rawValue
        startedAt = r.startedAtText
        seconds = (r.seconds * 1000).rounded() / 1000
        read = r.readDescription
        counts = r.counts
        error = r.error
    }

    enum CodingKeys: String, CodingKey {
        case runID = "run_id", status, mode, startedAt = "started_at", seconds, read, counts, error
    }
}

struct OutcomeView: Encodable, Sendable {
    var result: String
    @Null var runID: UInt64?
    var endedAt: Date
    @Null var error: String?

    enum CodingKeys: String, CodingKey { case result, runID = "run_id", endedAt = "ended_at", error }
}

struct WarehouseView: Encodable, Sendable {
    var id: String
    var state: String
    var seenAt: Date
    @Null var error: String?

    enum CodingKeys: String, CodingKey { case id, state, seenAt = "seen_at", error }
}
