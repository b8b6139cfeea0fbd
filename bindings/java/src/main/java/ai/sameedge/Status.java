package ai.sameedge;

/** The C library's {@code se_status} of a failed call, carried by {@link SameEdgeException}. */
public enum Status {
    /** {@code SE_OK}: never thrown. */
    OK(0),
    /** {@code SE_ERR_ARGUMENT}: null, wrong length or size, bad option, NaN/Inf input, a non-direct buffer. */
    ARGUMENT(1),
    /** {@code SE_ERR_MODEL}: the model is missing, damaged or inconsistent. */
    MODEL(2),
    /** {@code SE_ERR_RUNTIME}: LiteRT is missing, too old or failing. */
    RUNTIME(3),
    /**
     * {@code SE_ERR_STATE}: a closed object; a push or flush after flush; a stream that failed before or is
     * in a call on another thread; a side the model was opened without.
     */
    STATE(4),
    /** {@code SE_ERR_NO_MEMORY}. */
    NO_MEMORY(5),
    /** {@code SE_ERR_BUFFER_TOO_SMALL}: the output capacity is less than the output; nothing was consumed. */
    BUFFER_TOO_SMALL(6),
    /** {@code SE_ERR_NONFINITE}: the graph produced NaN or Inf (input far outside the model's range). */
    NONFINITE(7),
    /** {@code SE_ERR_CANCELLED}: {@link RunOptions#abortWhen} asked to stop. */
    CANCELLED(8),
    /** A status this binding does not know (a later 1.x library): see {@link SameEdgeException#code()}. */
    UNKNOWN(-1);

    private final int code;

    Status(int code) {
        this.code = code;
    }

    /** The C value of this status ({@code -1} for {@link #UNKNOWN}). */
    public int code() {
        return code;
    }

    /** The C name, as {@code se_status_name} gives it: {@code "SE_ERR_MODEL"}, {@code "SE_OK"}. */
    public String cName() {
        return this == OK ? "SE_OK" : this == UNKNOWN ? "SE_ERR_UNKNOWN" : "SE_ERR_" + name();
    }

    /** The status of a C value; {@link #UNKNOWN} for a value this binding does not know. */
    public static Status of(int code) {
        for (Status s : values()) {
            if (s.code == code) {
                return s;
            }
        }
        return UNKNOWN;
    }
}
