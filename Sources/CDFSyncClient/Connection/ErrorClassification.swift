import CDFSyncCore
import Foundation

/// Turns Databricks' two error layers (HTTP errors and FAILED statements) into `DatabricksError`s.
enum ErrorClassification {
    /// What a non-2xx answer says, on one line: the Databricks error body's code and message, or, for a body that
    /// is not one (a proxy's HTML page, plain text), the status, its reason phrase and the page's `<title>`.
    struct Answer {
        /// The `error_code` (or OAuth `error`) of a JSON error body; empty otherwise.
        var code: String
        var message: String
        /// Whether the body was a JSON error object (an answer of the API itself, not of something in between).
        var isJSON: Bool
    }

    static func answer(status: Int, reason: String, body: [UInt8]) -> Answer {
        let limit = 300
        if let parsed = try? JSONDecoder().decode(APIErrorBody.self, from: Data(body)),
            parsed.errorCode != nil || parsed.message != nil || parsed.error != nil
        {
            let text = DatabricksError.oneLine(parsed.message ?? parsed.error ?? "")
            return Answer(code: parsed.errorCode?.stringValue ?? "",
                message: text.isEmpty ? statusLine(status, reason) : clip(text, limit), isJSON: true)
        }
        let line = statusLine(status, reason)
        let text = String(decoding: body.prefix(64 << 10), as: UTF8.self)
        if let title = htmlTitle(text) {
            // nginx titles its pages with the status line itself: say it once.
            return Answer(code: "", message: title.caseInsensitiveCompare(line.dropFirst(5).description) == .orderedSame
                ? line : "\(line) (\(clip(title, 120)))", isJSON: false)
        }
        let looksHTML = text.range(of: "<html", options: .caseInsensitive) != nil
            || text.range(of: "<!doctype", options: .caseInsensitive) != nil
        let first = DatabricksError.oneLine(text.split(whereSeparator: \.isNewline).first.map(String.init) ?? "")
        if looksHTML || first.isEmpty { return Answer(code: "", message: line, isJSON: false) }
        return Answer(code: "", message: "\(line) (\(clip(first, 120)))", isJSON: false)
    }

    /// "HTTP 502 Bad Gateway": the server's reason phrase, else the standard one.
    static func statusLine(_ status: Int, _ reason: String) -> String {
        let phrase = DatabricksError.oneLine(reason).isEmpty ? standardReason(status) : DatabricksError.oneLine(reason)
        return phrase.isEmpty ? "HTTP \(status)" : "HTTP \(status) \(phrase)"
    }

    static func standardReason(_ status: Int) -> String {
        switch status {
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 413: "Payload Too Large"
        case 429: "Too Many Requests"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: ""
        }
    }

    /// The text of the first `<title>` of an HTML page, entities left as they are, on one line.
    static func htmlTitle(_ page: String) -> String? {
        guard let open = page.range(of: "<title", options: .caseInsensitive),
            let gt = page[open.upperBound...].firstIndex(of: ">"),
            let close = page[gt...].range(of: "</title", options: .caseInsensitive)
        else { return nil }
        let title = DatabricksError.oneLine(String(page[page.index(after: gt)..<close.lowerBound]))
        return title.isEmpty ? nil : title
    }

    static func clip(_ text: String, _ limit: Int) -> String {
        text.count > limit ? String(text.prefix(limit)) + "…" : text
    }

    /// Whether an error body says the warehouse does not exist (Databricks answers an unknown `warehouse_id` with
    /// 404 `RESOURCE_DOES_NOT_EXIST` or 400 `INVALID_PARAMETER_VALUE` "Warehouse … does not exist").
    static func namesMissingWarehouse(code: String, message: String) -> Bool {
        let codes = ["RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND", "BAD_REQUEST", ""]
        guard codes.contains(code) else { return false }
        return message.range(of: #"warehouse\b.*\b(does not exist|not found|doesn't exist)"#,
            options: [.regularExpression, .caseInsensitive]) != nil
    }

    /// Classifies a non-2xx HTTP response of the workspace API. Remedies never promise a retry: a request that was
    /// retried says so in its message when it gives up (``DatabricksError/afterAttempts(_:seconds:)``).
    static func http(status: Int, body: [UInt8], headers: HTTPResponseHead, host: String, context: String) -> DatabricksError {
        let answer = answer(status: status, reason: headers.reason, body: body)
        let code = answer.code
        let message = answer.message
        let retryAfter = headers[header: "retry-after"].flatMap(Double.init)
        let warehouseRemedy = "Check the warehouse id or HTTP path under SQL Warehouses → Connection details."
        if !answer.isJSON && status != 429 && status != 401 {
            // Not the API's own answer: a proxy, load balancer or gateway in between (or the wrong host).
            return DatabricksError(status >= 500 ? .serverError : .hostUnreachable,
                "\(context): \(host) answered \(message), not a Databricks API error",
                remedy: status >= 500
                    ? "A proxy or gateway between cdfsync and the workspace could not reach it; run the sync again "
                        + "later (it resumes from the last checkpoint), and check the proxy or the workspace status "
                        + "page if it persists."
                    : "Something between cdfsync and the workspace refused the request: check the host, and the proxy "
                        + "settings (https_proxy, no_proxy) and rules.",
                httpStatus: status, retryAfter: retryAfter)
        }
        switch status {
        case 401:
            return DatabricksError(.authenticationFailed, "\(host) refused the credential (\(message))",
                remedy: "Check the token or OAuth client; the request carried no credential of a type this API accepts.",
                httpStatus: status)
        case 403 where message.localizedCaseInsensitiveContains("invalid access token")
            || message.localizedCaseInsensitiveContains("token") && message.localizedCaseInsensitiveContains("expired"):
            return DatabricksError(.authenticationFailed, "the access token was rejected by \(host) (\(message))",
                remedy: "The token is invalid, expired or revoked: create a new personal access token or check the service principal's OAuth secret.",
                httpStatus: status)
        case 403:
            return DatabricksError(.permissionDenied, "\(context): \(message)",
                remedy: "Grant the identity CAN USE on the SQL warehouse (Warehouse → Permissions) and workspace access.",
                httpStatus: status)
        case 404 where code == "RESOURCE_DOES_NOT_EXIST" && context.contains("warehouse"),
            400..<500 where namesMissingWarehouse(code: code, message: message):
            return DatabricksError(.warehouseNotFound, "\(context): \(message)", remedy: warehouseRemedy,
                httpStatus: status)
        case 404:
            return DatabricksError(.invalidResponse, "\(context): not found (\(message))",
                remedy: "The statement or result expired (results live 1 hour); run the sync again.", httpStatus: status)
        case 429:
            return DatabricksError(.rateLimited, "\(context): rate limited by \(host) (\(message))",
                remedy: "Too many requests to the workspace: run fewer syncs at once, or run again later.",
                httpStatus: status, retryAfter: retryAfter)
        case 400 where code == "RESOURCE_DOES_NOT_EXIST":
            return DatabricksError(.warehouseNotFound, "\(context): \(message)", remedy: warehouseRemedy,
                httpStatus: status)
        case 400..<500:
            return DatabricksError(.statementFailed, "\(context): \(code.isEmpty ? "" : code + ": ")\(message)",
                remedy: "The request was rejected as invalid; this is likely a cdfsync bug or an unsupported workspace feature — report it with this message.",
                httpStatus: status)
        default:
            return DatabricksError(.serverError,
                "\(context): \(host) answered HTTP \(status) (\(code.isEmpty ? "" : code + ": ")\(message))",
                remedy: "The Databricks service failed on this request: run the sync again later (it resumes from the "
                    + "last checkpoint), and check the workspace status page if it persists.",
                httpStatus: status, retryAfter: retryAfter)
        }
    }

    /// Classifies a transport failure.
    static func transport(_ error: TransportError, context: String) -> DatabricksError {
        switch error.kind {
        case .couldNotResolveHost:
            return DatabricksError(.hostUnreachable, "cannot resolve \(error.host)",
                remedy: "Check the workspace host spelling and DNS / proxy settings (https_proxy, no_proxy).")
        case .connectionRefused:
            return DatabricksError(.hostUnreachable, "cannot connect to \(error.host) (\(error.message))",
                remedy: "Check the host and port, and that a firewall or proxy allows outbound HTTPS to the workspace.")
        case .timedOut:
            return DatabricksError(.timedOut, "\(context): \(error.host) did not answer in time",
                remedy: "Check network reachability of the workspace; raise --request-timeout for slow links.")
        case .tls:
            return DatabricksError(.tls, "TLS handshake with \(error.host) failed (\(error.message))",
                remedy: "If a corporate proxy re-signs TLS, pass its CA bundle with --ca-bundle; check the system clock.")
        case .interrupted, .aborted, .other:
            return DatabricksError(.hostUnreachable, "\(context): connection to \(error.host) failed (\(error.message))",
                remedy: "A network interruption: check connectivity and any proxy in between, then run the sync again "
                    + "(it resumes from the last checkpoint).")
        }
    }

    /// The error classes that mean the change data of the range asked for is gone or was never recorded, so a
    /// snapshot is the way forward (docs/pipelines.md lists them):
    /// - the log: `DELTA_VERSION_NOT_FOUND` (version before the earliest retained one),
    ///   `DELTA_TRUNCATED_TRANSACTION_LOG`, `DELTA_LOG_FILE_NOT_FOUND` (log files cleaned up),
    ///   `DELTA_MISSING_FILES_UNEXPECTED_VERSION` (the same, as a stream says it),
    ///   `DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION` (a timestamp bound before the oldest commit);
    /// - the files: `DELTA_CHANGE_DATA_FILE_NOT_FOUND` (a `_change_data` file vacuumed; Databricks Runtime),
    ///   `DELTA_FILE_NOT_FOUND_DETAILED` (a data file the log names is gone), `FAILED_READ_FILE.FILE_NOT_EXIST` and
    ///   `FAILED_READ_FILE.DBR_FILE_NOT_EXIST` (Spark's and the Databricks Runtime's missing-file reads; the other
    ///   `FAILED_READ_FILE` subclasses are damaged files, not missing ones);
    /// - retention: `DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION`;
    /// - never recorded: `DELTA_MISSING_CHANGE_DATA` (change data feed off at a version in the range).
    static let changeDataGoneClasses: Set<String> = [
        "DELTA_MISSING_CHANGE_DATA", "DELTA_VERSION_NOT_FOUND", "DELTA_TRUNCATED_TRANSACTION_LOG",
        "DELTA_LOG_FILE_NOT_FOUND", "DELTA_MISSING_FILES_UNEXPECTED_VERSION",
        "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION",
        "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION", "DELTA_CHANGE_DATA_FILE_NOT_FOUND",
        "DELTA_FILE_NOT_FOUND_DETAILED", "FAILED_READ_FILE.FILE_NOT_EXIST", "FAILED_READ_FILE.DBR_FILE_NOT_EXIST",
    ]

    /// Classifies a FAILED statement's `status.error`.
    static func failedStatement(message rawMessage: String, sqlState: String?, statementID: String) -> DatabricksError {
        let parsed = SQLErrorClass.parse(message: rawMessage)
        let errorClass = parsed.errorClass
        let state = sqlState ?? parsed.sqlState
        let message = rawMessage.trimmingCharacters(in: .whitespacesAndNewlines)
        let firstLine = message.split(separator: "\n").first.map(String.init) ?? message
        func make(_ c: DatabricksError.Category, _ remedy: String) -> DatabricksError {
            DatabricksError(c, firstLine, remedy: remedy, errorClass: errorClass, sqlState: state, statementID: statementID)
        }
        let cls = errorClass ?? ""
        switch true {
        case cls == "TABLE_OR_VIEW_NOT_FOUND":
            return make(.tableNotFound, "Check the table name, and that the identity has USE CATALOG, USE SCHEMA and SELECT on it.")
        case cls == "SCHEMA_NOT_FOUND" || cls.hasPrefix("NO_SUCH_SCHEMA"):
            return make(.schemaNotFound, "Check the schema name and that the identity has USE SCHEMA on it.")
        case cls == "CATALOG_NOT_FOUND" || cls.hasPrefix("NO_SUCH_CATALOG"):
            return make(.catalogNotFound, "Check the catalog name and that the identity has USE CATALOG on it.")
        case cls.hasPrefix("UNRESOLVED_COLUMN"):
            return make(.columnNotFound, "A mapped column does not exist (renamed or dropped?); fix the mapping or the table.")
        case cls == "INSUFFICIENT_PERMISSIONS" || message.hasPrefix("PERMISSION_DENIED") || state == "42501":
            return make(.permissionDenied, "Grant the identity USE CATALOG, USE SCHEMA and SELECT on the table.")
        case changeDataGoneClasses.contains(cls):
            return make(.changeDataUnavailable,
                "Change data for the range is gone or was never recorded; a full resync from a snapshot is needed (cdfsync does this automatically where allowed).")
        case cls.hasPrefix("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE"):
            return make(.statementFailed,
                "A column change in the source (rename, drop, type change) makes this change data unreadable in one "
                    + "statement. A sync reads such ranges in parts and resyncs from a snapshot where a version cannot "
                    + "be read at all; a replay cannot: replay from the version after it.")
        case cls == "DELTA_TABLE_ONLY_OPERATION" || cls == "DELTA_UNSUPPORTED_TIME_TRAVEL_VIEWS":
            return make(.changeDataUnavailable, "This is a view or not a Delta table: use watermark or snapshot mode instead of change data.")
        default:
            return make(.statementFailed, "The warehouse rejected the statement; the error class and SQLSTATE above say why.")
        }
    }
}
