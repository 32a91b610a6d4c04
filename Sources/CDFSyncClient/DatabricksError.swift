/// The one error type of the client, in the categories admins already know from Databricks'
/// troubleshooting tables. Every error carries a one-line remedy.
///
/// `description` is safe to print and log: it never contains tokens, secrets or presigned URLs.
import Foundation

public struct DatabricksError: Error, Sendable, CustomStringConvertible {
    /// An open set of categories.
    public struct Category: Hashable, Sendable, CustomStringConvertible {
        public let name: String
        private init(_ name: String) { self.name = name }
        public var description: String { name }

        public static let configuration = Category("configuration")
        public static let hostUnreachable = Category("host unreachable")
        public static let tls = Category("TLS")
        public static let authenticationFailed = Category("authentication failed")
        public static let permissionDenied = Category("permission denied")
        public static let warehouseNotFound = Category("warehouse not found")
        public static let warehouseStopped = Category("warehouse stopped")
        public static let warehouseStartTimeout = Category("warehouse starting too long")
        public static let catalogNotFound = Category("catalog not found")
        public static let schemaNotFound = Category("schema not found")
        public static let tableNotFound = Category("table not found")
        public static let columnNotFound = Category("column not found")
        public static let changeDataUnavailable = Category("change data unavailable")
        public static let statementFailed = Category("statement failed")
        public static let statementCanceled = Category("statement canceled")
        public static let timedOut = Category("timed out")
        public static let rateLimited = Category("rate limited")
        public static let serverError = Category("server error")
        public static let invalidResponse = Category("invalid response")
        /// A response the warehouse could not have produced (a row outside the versions asked for, a system column
        /// that is not one, a chunk chain that loops): the run stops and nothing after it is checkpointed.
        public static let protocolError = Category("protocol error")
    }

    public var category: Category
    public var message: String
    public var remedy: String
    /// The Spark/Delta error class, e.g. `DELTA_MISSING_CHANGE_DATA`, when the warehouse gave one.
    public var errorClass: String?
    public var sqlState: String?
    public var httpStatus: Int?
    public var statementID: String?
    /// Seconds the server asked us to wait (`Retry-After`).
    public var retryAfter: Double?

    public init(
        _ category: Category, _ message: String, remedy: String, errorClass: String? = nil, sqlState: String? = nil,
        httpStatus: Int? = nil, statementID: String? = nil, retryAfter: Double? = nil
    ) {
        self.category = category
        self.message = message
        self.remedy = remedy
        self.errorClass = errorClass
        self.sqlState = sqlState
        self.httpStatus = httpStatus
        self.statementID = statementID
        self.retryAfter = retryAfter
    }

    /// One line, whatever the server put in the message (bodies, SQL excerpts and stack traces span lines).
    public var description: String { Self.oneLine("\(category): \(message) — \(remedy)") }

    /// `text` on one line: line breaks and other control characters become spaces, runs of spaces one.
    public static func oneLine(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        var lastWasSpace = false
        for scalar in text.unicodeScalars {
            let space = scalar.value < 0x20 || scalar.value == 0x7F || scalar == " "
                || (0x80...0x9F).contains(scalar.value) || scalar == "\u{2028}" || scalar == "\u{2029}"
            if space {
                if !lastWasSpace { out.unicodeScalars.append(" ") }
                lastWasSpace = true
            } else {
                out.unicodeScalars.append(scalar)
                lastWasSpace = false
            }
        }
        return out.trimmingCharacters(in: .whitespaces)
    }

    /// The error a request gives up with after `attempts` tries: the message says so, so that no remedy has to
    /// promise a retry that already happened.
    func afterAttempts(_ attempts: Int, seconds: Double) -> DatabricksError {
        var e = self
        e.message += " (gave up after \(attempts) attempts in \(Int(seconds.rounded())) s)"
        return e
    }

    /// Whether the change data history needed for the range is gone (vacuum, retention) or was never
    /// recorded, so a snapshot resync is the way forward.
    public var isHistoryLost: Bool { category == .changeDataUnavailable }

    /// Whether a `table_changes` range was refused because it spans a schema change its change data cannot be read
    /// across (`DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE`, `..._INCOMPATIBLE_DATA_SCHEMA`): read the parts
    /// before and after it separately.
    public var isSchemaBreak: Bool { errorClass?.hasPrefix("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE") == true }

    /// Whether the start commit itself cannot be read in the read schema
    /// (`DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA`: its removed files were written in an older,
    /// incompatible schema), so no range starting there can be read and splitting does not help.
    public var isStartingCommitSchemaBreak: Bool {
        errorClass == "DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_STARTING_COMMIT_SCHEMA"
    }

    /// The version of that schema change, as the message names it ("... incompatible schema change at version 8").
    public var schemaBreakVersion: Int64? {
        guard isSchemaBreak, let r = message.range(of: #"incompatible (schema change|data schema) at version [0-9]+"#,
            options: .regularExpression) else { return nil }
        return Int64(message[r].split(separator: " ").last ?? "")
    }

    /// Whether an INLINE statement failed on the 25 MiB inline result cap (retry with EXTERNAL_LINKS).
    public var isInlineLimitExceeded: Bool { message.localizedCaseInsensitiveContains("inline byte limit exceeded") }

    /// Whether a start version after the latest one was asked for: "no new changes".
    public var isStartAfterLatest: Bool {
        errorClass == "DELTA_CDC_START_VERSION_AFTER_LATEST" || errorClass == "DELTA_TIMESTAMP_GREATER_THAN_COMMIT"
    }
}
