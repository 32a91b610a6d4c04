import CDFSyncCore
import Foundation
import Synchronization
import Hummingbird

/// The simulator's routes: the workspace API (statements, sessions, warehouses, OAuth, the blob storage of external
/// links), the admin interface under `/_sim/`, and the webhook receiver under `/_hook/`.
///
/// Every request passes, in order: ``RequestMiddleware`` (body, request log, `x-request-id`), ``FaultMiddleware``
/// (injected faults), ``AuthenticationMiddleware`` (admin token on `/_sim/`, a workspace principal on
/// `/api/2.0/sql/`), ``UnroutedMiddleware`` (what a path no route takes answers), then its route.
extension Simulator {
    func makeRouter() -> Router<SimulatorContext> {
        let router = Router(context: SimulatorContext.self)
        // Middleware first: a route is wrapped by the middleware added before it.
        router.add(middleware: RequestMiddleware(simulator: self))
        router.add(middleware: FaultMiddleware(simulator: self))
        router.add(middleware: AuthenticationMiddleware(simulator: self))
        router.add(middleware: UnroutedMiddleware(simulator: self))
        addWorkspaceRoutes(router)
        addAdminRoutes(router)
        router.post("/_hook/:name") { [self] _, ctx in webhook(ctx.request) }
        return router
    }

    private func addWorkspaceRoutes(_ router: Router<SimulatorContext>) {
        router.get("/oidc/.well-known/oauth-authorization-server") { [self] _, ctx in discovery(ctx.host) }
        router.get("/.well-known/databricks-config") { [self] _, ctx in databricksConfig(ctx.host) }
        router.post("/oidc/v1/token") { [self] _, ctx in token(ctx.request) }
        router.get("/_blob/:statement/:chunk") { [self] _, ctx in blob(ctx.request) }

        let sql = router.group("/api/2.0/sql")
        sql.post("statements") { [self] _, ctx in
            await executeStatement(ctx.request, principal: ctx.principal, host: ctx.host)
        }
        sql.get("statements/:id") { [self] _, ctx in
            getStatement(ctx.parameter("id"), principal: ctx.principal, host: ctx.host)
        }
        sql.delete("statements/:id") { [self] _, ctx in closeStatement(ctx.parameter("id"), principal: ctx.principal) }
        sql.post("statements/:id/cancel") { [self] _, ctx in
            cancelStatement(ctx.parameter("id"), principal: ctx.principal)
        }
        sql.get("statements/:id/result/chunks/:index") { [self] _, ctx in
            getChunk(
                ctx.parameter("id"), index: ctx.parameter("index"), principal: ctx.principal, query: ctx.request.query,
                host: ctx.host)
        }
        sql.post("sessions") { [self] _, ctx in createSession(ctx.request, principal: ctx.principal) }
        sql.delete("sessions/:id") { [self] _, ctx in deleteSession(ctx.parameter("id"), principal: ctx.principal) }
        sql.get("warehouses") { [self] _, ctx in listWarehouses(principal: ctx.principal, host: ctx.host) }
        sql.get("warehouses/:id") { [self] _, ctx in
            getWarehouse(ctx.parameter("id"), principal: ctx.principal, host: ctx.host)
        }
        sql.post("warehouses/:id/start") { [self] _, ctx in
            startStopWarehouse(ctx.parameter("id"), start: true, principal: ctx.principal)
        }
        sql.post("warehouses/:id/stop") { [self] _, ctx in
            startStopWarehouse(ctx.parameter("id"), start: false, principal: ctx.principal)
        }
    }

    func bearerToken(_ req: APIRequest) -> String? {
        guard let auth = req.header("authorization") else { return nil }
        let parts = auth.split(separator: " ", maxSplits: 1)
        guard parts.count == 2, parts[0].lowercased() == "bearer" else { return nil }
        return String(parts[1]).trimmingCharacters(in: .whitespaces)
    }

    /// The principal index for a workspace API call, or the 401/403 response.
    func authenticate(_ req: APIRequest) -> Result<Int, APIError> {
        guard let token = bearerToken(req), !token.isEmpty else {
            var e = APIError(401, "", "Credential was not sent or was of an unsupported type for this API.")
            e.numericCode = true
            return .failure(e)
        }
        let now = clock.now
        let idx: Int? = state.withLock { s in
            if s.revokedTokens.contains(token) { return nil }
            if let i = s.patIndex[token] { return i }
            if let o = s.oauthTokens[token], o.expires > now { return o.principal }
            return nil
        }
        guard let i = idx else {
            var e = APIError(403, "", "Invalid access token.")
            e.numericCode = true
            return .failure(e)
        }
        return .success(i)
    }

    /// What a request no route takes is answered: the admin interface's and the webhook receiver's own 404s, S3's
    /// errors under `/_blob/`, and the workspace's `ENDPOINT_NOT_FOUND` elsewhere.
    func unrouted(_ req: APIRequest) -> APIResponse {
        if req.isAdmin { return adminError(404, "no admin endpoint \(req.method) \(req.path)") }
        if req.path.hasPrefix("/_hook/") { return webhook(req) }
        if req.path.hasPrefix("/_blob/") { return blob(req) }
        return notFound(req)
    }

    func notFound(_ req: APIRequest) -> APIResponse {
        APIError(404, "ENDPOINT_NOT_FOUND", "No API found for '\(req.method) \(req.path)'").response()
    }
}

/// Authentication before routing: the admin token on `/_sim/` (401 otherwise), a workspace principal (PAT or OAuth
/// token) on `/api/2.0/sql/` (401 without a bearer token, 403 with an unknown, revoked or expired one) — also for
/// paths no route takes, as Databricks answers them.
struct AuthenticationMiddleware: RouterMiddleware {
    typealias Context = SimulatorContext
    let simulator: Simulator

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        let req = context.request
        if req.isAdmin {
            guard simulator.bearerToken(req) == simulator.configuration.adminToken else {
                return simulator.adminError(401, "the admin interface needs Authorization: Bearer <admin token>").hummingbird
            }
            return try await next(request, context)
        }
        guard req.isSQLAPI else { return try await next(request, context) }
        switch simulator.authenticate(req) {
        case .success(let principal):
            var context = context
            context.principal = principal
            return try await next(request, context)
        case .failure(let e):
            var r = e.response()
            if e.status == 401 { r.setHeader("www-authenticate", "Bearer realm=\"DatabricksRealm\"") }
            return r.hummingbird
        }
    }
}

/// The innermost middleware: turns the router's "no route" into the simulator's answer for that path (see
/// `Simulator.unrouted`). A route matches on path and method; a path taken by a route for another method lands here
/// too.
struct UnroutedMiddleware: RouterMiddleware {
    typealias Context = SimulatorContext
    let simulator: Simulator

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as HTTPError where e.status == .notFound {
            return simulator.unrouted(context.request).hummingbird
        }
    }
}
