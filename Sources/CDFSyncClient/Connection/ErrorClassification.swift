import CDFSyncCore
import Foundation

/// Turns Databricks' two error layers (HTTP errors and FAILED statements) into `DatabricksError`s.
enum ErrorClassification {
    /// Classifies a non-2xx HTTP response of the workspace API.
    static func http(status: Int, body: [UInt8], headers: HTTPResponseHead, host: String, context: String) -> DatabricksError {
        let parsed = try? JSONDecoder().decode(APIErrorBody.self, from: Data(body))
        let code = parsed?.errorCode?.stringValue ?? ""
        var message = parsed?.message ?? parsed?.error ?? String(decoding: body.prefix(300), as: UTF8.self)
        message = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if message.isEmpty { message = "HTTP \(status)" }
        let retryAfter = headers[header: "retry-after"].flatMap(Double.init)
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
        case 404 where code == "RESOURCE_DOES_NOT_EXIST" && context.contains("warehouse"):
            return DatabricksError(.warehouseNotFound, "\(context): \(message)",
                remedy: "Check the warehouse id or HTTP path under SQL Warehouses → Connection details.", httpStatus: status)
        case 404:
            return DatabricksError(.invalidResponse, "\(context): not found (\(message))",
                remedy: "The statement or result expired (results live 1 hour); run the sync again.", httpStatus: status)
        case 429:
            return DatabricksError(.rateLimited, "\(context): rate limited by \(host) (\(message))",
                remedy: "Too many requests; cdfsync retries with backoff. Lower concurrency or retry later.",
                httpStatus: status, retryAfter: retryAfter)
        case 400 where code == "RESOURCE_DOES_NOT_EXIST":
            return DatabricksError(.warehouseNotFound, "\(context): \(message)",
                remedy: "Check the warehouse id or HTTP path under SQL Warehouses → Connection details.", httpStatus: status)
        case 400..<500:
            return DatabricksError(.statementFailed, "\(context): \(code.isEmpty ? "" : code + ": ")\(message)",
                remedy: "The request was rejected as invalid; this is likely a cdfsync bug or an unsupported workspace feature — report it with this message.",
                httpStatus: status)
        default:
            return DatabricksError(.serverError, "\(context): \(host) answered HTTP \(status) (\(message))",
                remedy: "A temporary problem on the Databricks side; cdfsync retries. If it persists, check the workspace status page.",
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
                remedy: "A network interruption; cdfsync retries reads. Check connectivity if it persists.")
        }
    }

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
        case ["DELTA_MISSING_CHANGE_DATA", "DELTA_VERSION_NOT_FOUND", "DELTA_TRUNCATED_TRANSACTION_LOG",
              "DELTA_UNSUPPORTED_TIME_TRAVEL_BEYOND_DELETED_FILE_RETENTION_DURATION",
              "DELTA_TIMESTAMP_EARLIER_THAN_COMMIT_RETENTION"].contains(cls) || cls.hasPrefix("FAILED_READ_FILE"):
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
