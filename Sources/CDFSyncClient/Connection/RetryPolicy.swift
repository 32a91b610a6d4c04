import Foundation

/// Exponential backoff with full jitter, `Retry-After` honoured (capped), one overall budget.
public struct RetryPolicy: Sendable {
    public var maxAttempts: Int = 8
    /// Total seconds a single request may spend retrying.
    public var budget: Double = 300
    public var baseDelay: Double = 0.25
    public var maxDelay: Double = 20
    public var retryAfterCap: Double = 60

    public init() {}

    /// Seconds to wait before attempt `attempt` (1 = the first retry).
    public func delay(attempt: Int, retryAfter: Double?) -> Double {
        if let retryAfter { return min(max(retryAfter, 0), retryAfterCap) }
        let exp = min(maxDelay, baseDelay * pow(2, Double(attempt - 1)))
        return Double.random(in: exp / 2...exp)
    }
}

/// What may be retried, by request kind.
enum RetryRule {
    /// `POST /statements`: only when the statement cannot have started, or a proxy answered for the workspace:
    /// 429, 503, a gateway's 502/504, a connection refused, reset or timed out before any of the answer arrived.
    /// The statements are read-only, so a POST that did reach the warehouse leaves at most an orphan statement, which
    /// the warehouse cancels when nobody polls it. A 500 is the service's own, definite answer: not repeated.
    case submit
    /// Reads and cancels: 429, 5xx and network errors.
    case idempotent

    func shouldRetry(status: Int) -> Bool {
        switch self {
        case .submit: [429, 502, 503, 504].contains(status)
        case .idempotent: status == 429 || status >= 500
        }
    }

    /// - Parameter answerStarted: whether any byte of a 2xx answer arrived (for a POST: its statement id may have).
    func shouldRetry(_ error: TransportError, answerStarted: Bool) -> Bool {
        switch self {
        case .submit:
            error.requestNeverSent || (!answerStarted && (error.kind == .interrupted || error.kind == .timedOut))
        case .idempotent: error.kind != .tls && error.kind != .couldNotResolveHost
        }
    }
}
