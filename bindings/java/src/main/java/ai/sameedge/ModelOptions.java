package ai.sameedge;

/**
 * Options of {@link Model#open}: every field's default is the C library's ({@code se_model_options} zeroed).
 * The setters return {@code this}: {@code new ModelOptions().threads(2).sides(Model.SIDE_DECODER)}. The open
 * reads the options: changing them later changes no open model.
 */
public final class ModelOptions {
    private int threads;
    private int sides;
    private String weightCacheDir;
    private boolean skipSha256;
    private LogLevel logLevel = LogLevel.DEFAULT;
    private LogLevel litertLogLevel = LogLevel.DEFAULT;
    private LogListener logListener;

    /** CPU threads for LiteRT/XNNPACK, 1..256; 0 (default): every core this process may use. */
    public ModelOptions threads(int threads) {
        this.threads = threads;
        return this;
    }

    /** Which graphs to load: {@link Model#SIDE_ENCODER}, {@link Model#SIDE_DECODER}, {@link Model#SIDE_BOTH}; 0 (default): both. */
    public ModelOptions sides(int sides) {
        this.sides = sides;
        return this;
    }

    /**
     * Where XNNPACK keeps packed weights between opens: a directory (one file per graph, named after its
     * sha256). {@code null} (default): in memory where memfd_create exists (Linux, Android); {@code ""}: none.
     */
    public ModelOptions weightCacheDir(String weightCacheDir) {
        this.weightCacheDir = weightCacheDir;
        return this;
    }

    /** true: check each graph's size only; false (default): its sha256 against the manifest too. */
    public ModelOptions skipSha256(boolean skipSha256) {
        this.skipSha256 = skipSha256;
        return this;
    }

    /** This library's messages to the {@link #logListener} at or above this level; default: warnings. */
    public ModelOptions logLevel(LogLevel logLevel) {
        this.logLevel = logLevel == null ? LogLevel.DEFAULT : logLevel;
        return this;
    }

    /** LiteRT's own messages, which it writes to stderr (no hook redirects them); default: silent. */
    public ModelOptions litertLogLevel(LogLevel litertLogLevel) {
        this.litertLogLevel = litertLogLevel == null ? LogLevel.DEFAULT : litertLogLevel;
        return this;
    }

    /** Receives this library's messages (see {@link LogListener}); {@code null} (default): they are dropped. */
    public ModelOptions logListener(LogListener logListener) {
        this.logListener = logListener;
        return this;
    }

    int threads() {
        return threads;
    }

    int sides() {
        return sides;
    }

    String weightCacheDir() {
        return weightCacheDir;
    }

    boolean skipSha256() {
        return skipSha256;
    }

    LogLevel logLevel() {
        return logLevel;
    }

    LogLevel litertLogLevel() {
        return litertLogLevel;
    }

    LogListener logListener() {
        return logListener;
    }
}
