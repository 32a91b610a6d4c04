import Foundation
import Synchronization
import HTTPTypes
import Hummingbird

/// The request context of the simulator's routes: the request with its body read, the host clients reach it by, and
/// the principal a workspace API call authenticated as.
struct SimulatorContext: RequestContext {
    var coreContext: CoreRequestContextStorage
    var request = APIRequest(method: "GET", path: "/")
    /// `host:port` for links the simulator hands out: the request's `Host`, else the address it listens on.
    var host = ""
    /// Index of the authenticated principal (workspace API routes only).
    var principal = -1

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
    }

    /// Path parameter `name` of the route, as sent.
    func parameter(_ name: String) -> String { parameters.get(name) ?? "" }

    /// Path parameter `name` of the route, percent-decoded.
    func decodedParameter(_ name: String) -> String {
        let raw = parameter(name)
        return raw.removingPercentEncoding ?? raw
    }
}

extension APIRequest {
    /// Whether it is for the admin interface (`/_sim/...`).
    var isAdmin: Bool { path == "/_sim" || path.hasPrefix("/_sim/") }

    /// Whether it is for the workspace's SQL API (`/api/2.0/sql/...`), which authenticates every call.
    var isSQLAPI: Bool {
        let segs = path.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: true)
        return segs.count >= 3 && segs[0] == "api" && segs[1] == "2.0" && segs[2] == "sql"
    }
}

/// The outermost middleware: reads the body (up to ``maxBody``), logs the request (`Configuration.requestLog`), and
/// sends `x-request-id` and `server: databricks` with every answer, as Databricks does.
struct RequestMiddleware: RouterMiddleware {
    typealias Context = SimulatorContext
    let simulator: Simulator
    /// Largest request body accepted (statements are at most 16 MiB).
    static let maxBody = 32 << 20

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let started = DispatchTime.now().uptimeNanoseconds
        var request = request
        var response: Response
        var context = context
        do {
            let body = try await request.collectBody(upTo: Self.maxBody)
            context.request = APIRequest(request, body: Array(buffer: body))
        } catch let e as HTTPError where e.status == .contentTooLarge {
            context.request = APIRequest(request, body: [])
            response = APIResponse(status: 413, json: Array("request body too large".utf8), contentType: "text/plain")
                .hummingbird
            return finish(&response, context.request, started: started)
        }
        context.host = context.request.host ?? simulator.state.withLock { $0.boundAddress }
        response = try await next(request, context)
        return finish(&response, context.request, started: started)
    }

    private func finish(_ response: inout Response, _ req: APIRequest, started: UInt64) -> Response {
        if let log = simulator.configuration.requestLog {
            let ms = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e6
            let bytes = response.body.contentLength ?? 0
            log("\(req.method) \(req.path) \(response.status.code) \(bytes)B \(String(format: "%.1f", ms))ms")
        }
        if response.headers[.requestID] == nil {
            response.headers[.requestID] = UUID().uuidString.lowercased()
        }
        response.headers[.server] = "databricks"
        return response
    }
}

extension HTTPField.Name {
    static let requestID = HTTPField.Name("x-request-id")!
}
