@testable import CDFSyncClient
import CDFSyncCore
import CDFSyncEngine
import CDFSyncStorage
import CDFSyncTestSupport
import Foundation
import Logging
import Testing
import WarehouseSimulator

/// Errors name the real cause: the first download that failed, not "stopped"; a busy token endpoint, not the
/// credentials; a proxy's gateway error retried, a service's 500 not; an unknown warehouse, not a bug; a proxy's
/// page on one line; the server's chunk links followed; a queued statement, not a warehouse start.
@Suite("Errors that name the real cause")
struct ErrorCauseTests {
    static let statements = "/api/2.0/sql/statements"
    static let oauth = Authentication.oauthM2M(
        clientID: "6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42", clientSecret: Secret("dose-demo-secret"))

    /// Requests the simulator answered, as its log lines ("METHOD /path STATUS ...").
    final class RequestLog: @unchecked Sendable {
        private let lock = NSLock()
        private var lines: [String] = []
        func add(_ l: String) { lock.withLock { lines.append(l) } }
        func count(_ prefix: String) -> Int { lock.withLock { lines.filter { $0.hasPrefix(prefix) }.count } }
    }

    static let blob = Fault.Match(method: "GET", pathPrefix: "/_blob/")
    static let submit = Fault.Match(method: "POST", pathPrefix: statements)

    func simulator(_ configure: (inout Simulator.Configuration) -> Void = { _ in }) throws
        -> (RunningSimulator, RequestLog)
    {
        let log = RequestLog()
        var config = Simulator.Configuration(rowsPerChunk: 40, rowsPerExternalChunk: 60)
        config.requestLog = { log.add($0) }
        configure(&config)
        return (try RunningSimulator(configuration: config), log)
    }

    func sync(_ sim: RunningSimulator, _ dir: TempDir, disposition: Statement.Disposition? = nil,
              auth: Authentication? = nil, warehouse: String = "8a1c2f3d4e5b6a70", maxAttempts: Int = 8,
              waitTimeout: Int = 10, progress: (@Sendable (String) -> Void)? = nil) throws -> SyncSummary {
        var settings = try sim.settings(warehouse: warehouse)
        if let auth { settings.authentication = auth }
        let client = StatementClient(settings: settings)
        client.retryPolicy.baseDelay = 0.01
        client.retryPolicy.maxDelay = 0.05
        client.retryPolicy.maxAttempts = maxAttempts
        client.waitTimeout = waitTimeout
        if let progress { client.logger = LogCapture.logger(progress) }
        var options = SyncOptions(table: QualifiedName(catalog: "main", schema: "research", table: "participants"),
            keyColumn: "participant_id", outputDirectory: dir.sub("o"))
        options.disposition = disposition
        return try CDFSync(client: client, store: try PanelStore(directory: dir.sub("s")), options: options).run()
    }

    /// The client error a sync failed with.
    func failure(_ body: () throws -> Void) -> DatabricksError? {
        do {
            try body()
        } catch let e as SyncFailure {
            return e.underlying as? DatabricksError
        } catch {
            return nil
        }
        return nil
    }

    func expectCleanPanel(_ dir: TempDir) throws {
        #expect(try panelContents(dir.sub("s")) == expectedPanel(workspace: fixturePath("demo-workspace.json")))
    }

    // MARK: - Download workers

    /// Chunk 1's link request revokes the personal access token it carries while chunk 0 is still downloading: the
    /// run must fail with that authentication error (running again cannot help), not "download … was stopped".
    @Test func aTokenRevokedWhileChunksDownloadIsReportedAsTheAuthenticationFailureItIs() throws {
        let (sim, _) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.blob, count: 1, kind: .slow, delayMillis: 500))
        _ = sim.sim.addFault(Fault(match: .init(method: "GET", pathPrefix: Self.statements), count: 1,
            kind: .revokeToken))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, disposition: .externalLinks) }
        #expect(e?.category == .authenticationFailed, "\(String(describing: e))")
        #expect(e?.description.contains("was stopped") == false)
        #expect(e?.remedy.contains("Run the sync again") == false)
    }

    /// Storage that keeps answering 502: the error says HTTP 502 and that it gave up after retrying, and no remedy
    /// promises a retry that already happened.
    @Test func persistent502sOnChunksAreReportedAsSuch() throws {
        let (sim, log) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.blob, count: nil, kind: .status, status: 502))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, disposition: .externalLinks, maxAttempts: 3) }
        #expect(e?.category == .serverError, "\(String(describing: e))")
        #expect(e?.message.contains("HTTP 502") == true, "\(String(describing: e))")
        #expect(e?.message.contains("gave up after 3 attempts") == true, "\(String(describing: e))")
        #expect(e?.remedy.contains("retries") == false, "\(String(describing: e))")
        #expect(log.count("GET /_blob/") >= 3)
    }

    /// A result file gone from storage (404) is neither "stopped" nor a storage outage cdfsync would retry.
    @Test func a404OnAChunkNamesTheMissingResultFile() throws {
        let (sim, log) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.blob, count: 1, kind: .status, status: 404))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, disposition: .externalLinks) }
        #expect(e?.category == .invalidResponse, "\(String(describing: e))")
        #expect(e?.message.contains("HTTP 404") == true && e?.message.contains("result file is gone") == true,
            "\(String(describing: e))")
        #expect(e?.remedy.contains("retries") == false)
        #expect(log.count("GET /_blob/") <= 2)  // the 404 and at most the other worker's download: not retried
    }

    // MARK: - OAuth token endpoint

    /// A 503, a 429 (with Retry-After) and a dropped connection from `/oidc/v1/token` are the endpoint's trouble, not
    /// the credentials': the token request is retried and the sync succeeds.
    @Test func transientTokenEndpointAnswersAreRetried() throws {
        let (sim, log) = try simulator()
        let token = Fault.Match(method: "POST", pathPrefix: "/oidc/v1/token")
        // The drop first, on a fresh connection (libcurl resends on a closed keep-alive connection by itself).
        _ = sim.sim.addFault(Fault(match: token, count: 1, kind: .drop))
        _ = sim.sim.addFault(Fault(match: token, count: 1, kind: .status, status: 503))
        _ = sim.sim.addFault(Fault(match: token, count: 1, kind: .status, status: 429, retryAfter: 0))
        let dir = TempDir()
        _ = try sync(sim, dir, auth: Self.oauth)
        try expectCleanPanel(dir)
        #expect(log.count("POST /oidc/v1/token") >= 3)  // the 503 and the 429 (the dropped one is not answered)
    }

    @Test func aTokenEndpointThatStaysUnavailableIsNotBlamedOnTheCredentials() throws {
        let (sim, log) = try simulator()
        _ = sim.sim.addFault(Fault(match: .init(method: "POST", pathPrefix: "/oidc/v1/token"), count: nil, kind: .status,
            status: 503))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, auth: Self.oauth, maxAttempts: 3) }
        #expect(e?.category == .serverError, "\(String(describing: e))")
        #expect(e?.message.contains("HTTP 503") == true && e?.message.contains("gave up after 3 attempts") == true,
            "\(String(describing: e))")
        #expect(e?.remedy.contains("client id and secret") == false)
        #expect(log.count("POST /oidc/v1/token") == 3)
    }

    /// `invalid_client` is the credentials' fault: said at once, not retried.
    @Test func invalidClientBlamesTheCredentialsWithoutRetrying() throws {
        let (sim, log) = try simulator()
        let dir = TempDir()
        let e = failure {
            _ = try sync(sim, dir,
                auth: .oauthM2M(clientID: "6f2d0a8e-4b1c-4d2e-9f3a-7c5b1e0d9a42", clientSecret: Secret("nope")))
        }
        #expect(e?.category == .authenticationFailed)
        #expect(e?.message.contains("invalid_client") == true, "\(String(describing: e))")
        #expect(e?.remedy.contains("client id and secret") == true)
        #expect(log.count("POST /oidc/v1/token") == 1)
    }

    // MARK: - Statement submission

    /// A proxy's 502 and 504 pages and a connection closed before any answer: the statement cannot have been
    /// answered with an id, so it is submitted again (read-only statements; an orphan would be cancelled by the
    /// warehouse).
    @Test func aSubmitAnsweredByAGatewayOrCutBeforeAnyAnswerIsRetried() throws {
        let (sim, _) = try simulator()
        let submit = Self.submit
        // The drop first, on the client's first (fresh) connection: libcurl itself resends a request that met a
        // closed keep-alive connection, so only there does the rule of the client decide.
        _ = sim.sim.addFault(Fault(match: submit, count: 1, kind: .drop))
        _ = sim.sim.addFault(Fault(match: submit, count: 1, kind: .proxyStatus, status: 502))
        _ = sim.sim.addFault(Fault(match: submit, count: 1, kind: .proxyStatus, status: 504))
        let dir = TempDir()
        _ = try sync(sim, dir)
        try expectCleanPanel(dir)
    }

    /// A 500 with a Databricks error body is the service's answer: not repeated, and the remedy does not say it is.
    @Test func aSubmitAnswered500IsNotRetried() throws {
        let (sim, log) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.submit, count: 1, kind: .status, status: 500,
            message: "Internal error while planning the query."))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir) }
        #expect(e?.category == .serverError, "\(String(describing: e))")
        #expect(e?.message.contains("INTERNAL_ERROR") == true, "\(String(describing: e))")
        #expect(e?.remedy.contains("retries") == false, "\(String(describing: e))")
        #expect(log.count("POST \(Self.statements)") == 1)
    }

    /// Databricks may answer an unknown `warehouse_id` with 400 `INVALID_PARAMETER_VALUE` "Warehouse … does not
    /// exist": that is a wrong warehouse id, not a bug.
    @Test func anUnknownWarehouseAnswered400IsWarehouseNotFound() throws {
        let (sim, _) = try simulator { $0.unknownWarehouseStatus = 400 }
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, warehouse: "0123456789abcdef") }
        #expect(e?.category == .warehouseNotFound, "\(String(describing: e))")
        #expect(e?.message.contains("0123456789abcdef") == true)
        #expect(e?.remedy.contains("cdfsync bug") == false)
    }

    // MARK: - One line

    /// A proxy's HTML page becomes status, reason and title, on one line.
    @Test func aProxysHTMLPageIsReducedToOneLine() throws {
        let (sim, _) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.submit, count: nil, kind: .proxyStatus, status: 502,
            message: "Upstream\r\n  unreachable (corp gateway)"))
        let dir = TempDir()
        let e = failure { _ = try sync(sim, dir, maxAttempts: 2) }
        let text = e.map { "\($0)" } ?? ""
        #expect(text.contains("HTTP 502 Bad Gateway (Upstream unreachable (corp gateway))"), "\(text)")
        #expect(!text.contains("<") && !text.contains("\n") && !text.contains("\r"), "\(text)")
    }

    /// Each branch of the answer reduction, directly.
    @Test func answersAreReducedToOneLine() {
        let page = Array(
            "<!DOCTYPE html>\n<html><head>\n<TITLE>504 Gateway Time-out</TITLE></head><body>…</body></html>".utf8)
        #expect(ErrorClassification.answer(status: 504, reason: "Gateway Time-out", body: page).message
            == "HTTP 504 Gateway Time-out")
        func answer(_ status: Int, _ reason: String, _ body: String) -> ErrorClassification.Answer {
            ErrorClassification.answer(status: status, reason: reason, body: Array(body.utf8))
        }
        #expect(answer(502, "", "<html><body>down</body></html>").message == "HTTP 502 Bad Gateway")
        #expect(answer(503, "Service Unavailable", "upstream connect error\nreset").message
            == "HTTP 503 Service Unavailable (upstream connect error)")
        let json = answer(500, "", #"{"error_code":"INTERNAL_ERROR","message":"a\nb"}"#)
        #expect(json.isJSON && json.code == "INTERNAL_ERROR" && json.message == "a b")
        let e = DatabricksError(.serverError, "line one\nline two\r\n\tthree", remedy: "do\nthis")
        #expect(e.description == "server error: line one line two three — do this")
    }

    /// Through the CLI: a corporate proxy's "access denied" page is one `error:` line, without HTML.
    @Test func aProxyPageIsOneLineInTheCLI() throws {
        let (sim, _) = try simulator()
        _ = sim.sim.addFault(Fault(match: Self.submit, count: nil, kind: .proxyStatus, status: 403,
            message: "Access Denied\n - Web Filter"))
        let dir = TempDir()
        let (status, output) = try runCLI(["sync", "--table", "main.research.participants", "--key", "participant_id"],
            port: sim.port, dir: dir)
        #expect(status != 0)
        let errorLines = output.split(separator: "\n").filter { $0.hasPrefix("error:") }
        #expect(errorLines.count == 1, "\(output)")
        #expect(errorLines.first?.contains("HTTP 403 Forbidden (Access Denied - Web Filter)") == true, "\(output)")
        #expect(!output.contains("<html") && !output.contains("<title"), "\(output)")
    }

    // MARK: - Chunk links

    /// The server's chunk links carry a query string it requires: EXTERNAL_LINKS and INLINE reads follow them (also
    /// when an expired link is refreshed) instead of building the path.
    @Test(arguments: [Statement.Disposition.externalLinks, .inline])
    func chunkLinksAreFollowedAsTheServerGaveThem(_ disposition: Statement.Disposition) throws {
        let (sim, log) = try simulator { $0.requireChunkLinkQuery = true }
        _ = sim.sim.addFault(Fault(match: Self.blob, count: 2, kind: .expireLinks))
        let dir = TempDir()
        _ = try sync(sim, dir, disposition: disposition)
        try expectCleanPanel(dir)
        #expect(log.count("GET \(Self.statements)/") >= 2)  // chunk requests were made, through the given links
    }

    // MARK: - PENDING

    /// A statement queued on a running warehouse answers PENDING, then RUNNING, then SUCCEEDED: the client polls
    /// through it and says the statement is queued, not that the warehouse is starting.
    @Test func aStatementQueuedOnARunningWarehouseIsNotAWarehouseStart() throws {
        let (sim, log) = try simulator()
        _ = sim.sim.addFault(Fault(match: .init(statementContains: "table_changes"), count: 1, kind: .queue, polls: 3))
        let dir = TempDir()
        let lines = Lines()
        _ = try sync(sim, dir, progress: { lines.add($0) })
        try expectCleanPanel(dir)
        #expect(!lines.all.contains { $0.hasPrefix("warehouse starting") }, "\(lines.all)")
        #expect(lines.all.contains { $0.hasPrefix("statement queued (") }, "\(lines.all)")
        // Three PENDING answers (the submit's and two polls), one RUNNING, then SUCCEEDED: at least three polls.
        #expect(log.count("GET \(Self.statements)/") >= 3)
    }

    /// A warehouse that is not running still shows as starting.
    @Test func aStoppedWarehouseStillShowsAsStarting() throws {
        let (sim, _) = try simulator()
        try sim.sim.setWarehouseState(id: "8a1c2f3d4e5b6a70", state: "STOPPED")
        let dir = TempDir()
        let lines = Lines()
        _ = try sync(sim, dir, waitTimeout: 0, progress: { lines.add($0) })
        #expect(lines.all.contains { $0.hasPrefix("warehouse starting (") }, "\(lines.all)")
        #expect(!lines.all.contains { $0.hasPrefix("statement queued") }, "\(lines.all)")
        try expectCleanPanel(dir)
    }
}
