package ai.sameedge;

import java.nio.charset.StandardCharsets;

/**
 * A failed call: the C library's status and the one-line message it left for the calling thread
 * ({@code se_last_error()}), or a misuse this binding refuses before calling the library (a closed object,
 * a wrong length, a null array, a non-direct buffer) with the status the library would give.
 */
public final class SameEdgeException extends RuntimeException {
    private static final long serialVersionUID = 1L;

    private final int code;
    private final String detail;

    /** A failure of status {@code status} with the message {@code detail}. */
    public SameEdgeException(Status status, String detail) {
        this(status.code(), detail);
    }

    private SameEdgeException(int code, String detail) {
        super(Status.of(code).cName() + ": " + detail);
        this.code = code;
        this.detail = detail;
    }

    /** Called from JNI with the status and se_last_error()'s bytes (UTF-8, not JNI's modified UTF-8). */
    static SameEdgeException fromNative(int code, byte[] message) {
        return new SameEdgeException(code, new String(message, StandardCharsets.UTF_8));
    }

    /** The status; {@link Status#UNKNOWN} if the library returned one this binding does not know. */
    public Status status() {
        return Status.of(code);
    }

    /** The C status value, as the library returned it. */
    public int code() {
        return code;
    }

    /** The message alone, without the status name that {@link #getMessage()} starts with. */
    public String detail() {
        return detail;
    }
}
