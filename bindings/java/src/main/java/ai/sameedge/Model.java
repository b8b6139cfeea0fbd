package ai.sameedge;

import java.nio.ByteBuffer;

/**
 * An open SAME model (libsame_edge's {@code se_model}): its facts, its streams, offline encode and decode.
 *
 * <p><b>Shapes and units.</b> Audio is interleaved float32, {@code [frames][channels]} (frame {@code t}, channel
 * {@code c} at index {@code t * channels + c}), at {@link #sampleRate()} Hz, nominally in [-1, 1]. Latents are
 * interleaved {@code [frames][latentDim]}; one latent frame per {@link #hop()} audio frames. Every output is
 * bit-identical to the Python runtime's ({@code same_edge.Codec}) with the same thread count.
 *
 * <p><b>Threads.</b> A Model may be shared by any number of threads: offline calls and stream creation on
 * several threads run concurrently. {@link #close()} may be called at any time from any thread: a call already
 * running finishes first (the native model is freed when the last running call returns), later calls throw
 * {@link SameEdgeException} with {@link Status#STATE}. Streams keep the native model alive: a stream goes on
 * working after its Model is closed, and the native model is freed with its last stream.
 *
 * <p><b>Lifetime.</b> Close every Model and stream (try-with-resources); one that is never closed keeps its
 * native memory until the process exits. The facts ({@link #sampleRate()}...) are read at open and stay
 * readable after close.
 *
 * <p><b>Memory per call.</b> {@link #encode}/{@link #decode} allocate their result array, and the JNI shim copies
 * the input and output through one temporary native buffer; the library creates a stream per call.
 */
public final class Model implements AutoCloseable {
    /** {@link ModelOptions#sides}: load the encoder only. */
    public static final int SIDE_ENCODER = 1;
    /** {@link ModelOptions#sides}: load the decoder only. */
    public static final int SIDE_DECODER = 2;
    /** {@link ModelOptions#sides}: load both (the default, also 0). */
    public static final int SIDE_BOTH = 3;

    private static final int[] NO_FACTS = new int[9];

    private final int sampleRate;
    private final int channels;
    private final int latentDim;
    private final int hop;
    private final int framesPerChunk;
    private final int encoderLatencySamples;
    private final int decoderLatencySamples;
    private final int threads;
    private final int sides;
    private final String id;
    private final String precision;
    private final LogRef logRef;

    private long handle; // 0 once freed
    private int calls; // calls running on the handle
    private boolean closed;

    private Model(long handle, LogRef logRef) {
        this.handle = handle;
        this.logRef = logRef;
        int[] f = NO_FACTS.clone();
        Native.modelFacts(handle, f);
        sampleRate = f[0];
        channels = f[1];
        latentDim = f[2];
        hop = f[3];
        framesPerChunk = f[4];
        encoderLatencySamples = f[5];
        decoderLatencySamples = f[6];
        threads = f[7];
        sides = f[8];
        id = Native.string(Native.modelId(handle));
        precision = Native.string(Native.modelPrecision(handle));
    }

    /** This library's version, {@code "MAJOR.MINOR.PATCH"} (that of the same-edge Python package too). */
    public static String version() {
        return Native.version();
    }

    /** This library's version as {@code MAJOR * 10000 + MINOR * 100 + PATCH}. */
    public static int versionNumber() {
        return Native.versionNumber();
    }

    /** The LiteRT runtime this process loaded, as the newest LiteRT C API release whose entry points it has ("2.3"). */
    public static String litertVersion() {
        return Native.litertVersion();
    }

    /** {@link #open(String, ModelOptions)} with the default options. */
    public static Model open(String dir) {
        return open(dir, null);
    }

    /**
     * Opens the model in directory {@code dir} (manifest.json, encoder.tflite, decoder.tflite written by
     * {@code same-edge export}): checks sizes and sha256 against the manifest, the graphs' structure and the
     * manifest each embeds, and compiles them for the CPU. The files are read into memory: replacing them later
     * changes nothing.
     *
     * @param options null for the defaults
     * @throws SameEdgeException MODEL (missing or damaged), RUNTIME (LiteRT), ARGUMENT (options)
     */
    public static Model open(String dir, ModelOptions options) {
        if (dir == null) {
            throw new SameEdgeException(Status.ARGUMENT, "the model directory is null");
        }
        byte[] path = Native.cString(dir, "the model directory");
        return opened(options, (o, cache, log) -> Native.open(path, o, cache, log));
    }

    /**
     * Opens a model from the bytes of its three files, from each buffer's position to its limit (positions are
     * not moved). Direct buffers (a MappedByteBuffer too) are read where they are; heap buffers are copied to
     * a direct buffer first. The library copies what it keeps: the buffers may be reused once this returns.
     *
     * @param encoder null for a model opened without the encoder ({@link ModelOptions#sides})
     * @param decoder null for a model opened without the decoder
     * @param options null for the defaults
     */
    public static Model openMemory(ByteBuffer manifest, ByteBuffer encoder, ByteBuffer decoder, ModelOptions options) {
        if (manifest == null) {
            throw new SameEdgeException(Status.ARGUMENT, "the manifest is null");
        }
        ByteBuffer m = direct(manifest), e = direct(encoder), d = direct(decoder);
        return opened(options, (o, cache, log) -> Native.openMemory(m, m.position(), m.remaining(), e,
                e == null ? 0 : e.position(), e == null ? 0 : e.remaining(), d, d == null ? 0 : d.position(),
                d == null ? 0 : d.remaining(), o, cache, log));
    }

    /** {@link #openMemory(ByteBuffer, ByteBuffer, ByteBuffer, ModelOptions)} of arrays (copied once). */
    public static Model openMemory(byte[] manifest, byte[] encoder, byte[] decoder, ModelOptions options) {
        return openMemory(manifest == null ? null : ByteBuffer.wrap(manifest),
                encoder == null ? null : ByteBuffer.wrap(encoder), decoder == null ? null : ByteBuffer.wrap(decoder),
                options);
    }

    /**
     * Opens a model from ranges of open files (see {@link FileRange}): an APK's uncompressed assets, read where
     * they are. The descriptors may be the same file and may be closed once this returns.
     *
     * @param encoder null for a model opened without the encoder
     * @param decoder null for a model opened without the decoder
     * @param options null for the defaults
     */
    public static Model openFd(FileRange manifest, FileRange encoder, FileRange decoder, ModelOptions options) {
        if (manifest == null) {
            throw new SameEdgeException(Status.ARGUMENT, "the manifest's file range is null");
        }
        return opened(options, (o, cache, log) -> Native.openFd(ranges(manifest, encoder, decoder), o, cache, log));
    }

    /** Sample rate in Hz (44100 for SAME). */
    public int sampleRate() {
        return sampleRate;
    }

    /** Audio channels (2 for SAME). */
    public int channels() {
        return channels;
    }

    /** Latent rows per latent frame. */
    public int latentDim() {
        return latentDim;
    }

    /** Audio frames per latent frame. */
    public int hop() {
        return hop;
    }

    /** Latent frames of the smallest window a graph runs: an attention chunk (2) for SAME-S, 1 for SAME-L. */
    public int framesPerChunk() {
        return framesPerChunk;
    }

    /** The most audio frames an encoder stream holds back. */
    public int encoderLatencySamples() {
        return encoderLatencySamples;
    }

    /** The most audio frames a decoder stream holds back behind the latents pushed. */
    public int decoderLatencySamples() {
        return decoderLatencySamples;
    }

    /** CPU threads of LiteRT/XNNPACK. */
    public int threads() {
        return threads;
    }

    /** The sides loaded: {@link #SIDE_ENCODER}, {@link #SIDE_DECODER} or {@link #SIDE_BOTH}. */
    public int sides() {
        return sides;
    }

    /** {@code config_sha256[:16] "-" checkpoint_sha256[:16]}. */
    public String id() {
        return id;
    }

    /** The export's precision ("fp32", "w8a8"...). */
    public String precision() {
        return precision;
    }

    /** A live encoder stream ({@code largestWindow} 1): audio in, latents out. */
    public EncoderStream encoderStream() {
        return encoderStream(1);
    }

    /**
     * A new encoder stream: interleaved audio {@code [frames][channels]} in, latents {@code [frames][latentDim]}
     * out.
     *
     * @param largestWindow the largest window (in chunks) a call may use: 1 is a live stream (lowest
     *     latency), 0 every window of the model (offline throughput)
     */
    public EncoderStream encoderStream(int largestWindow) {
        long model = enter();
        try {
            return new EncoderStream(Native.streamCreate(model, false, largestWindow), encoderLatencySamples, logRef);
        } finally {
            exit();
        }
    }

    /** A live decoder stream ({@code largestWindow} 1): latents in, audio out. */
    public DecoderStream decoderStream() {
        return decoderStream(1);
    }

    /**
     * A new decoder stream: latents {@code [frames][latentDim]} in, interleaved audio {@code [frames][channels]}
     * out. {@code largestWindow} as {@link #encoderStream(int)}'s.
     */
    public DecoderStream decoderStream(int largestWindow) {
        long model = enter();
        try {
            return new DecoderStream(Native.streamCreate(model, true, largestWindow), decoderLatencySamples, logRef);
        } finally {
            exit();
        }
    }

    /** {@link #encode(float[], RunOptions)} with every window and no callbacks. */
    public float[] encode(float[] audio) {
        return encode(audio, null);
    }

    /**
     * Encodes a whole clip: interleaved audio {@code [frames][channels]} (frames = length / channels) to latents
     * {@code [ceil(frames / hop)][latentDim]}, the same as one push of everything and a flush.
     *
     * @param run null: every window, no callbacks
     * @throws SameEdgeException ARGUMENT (null, a length not a multiple of channels, NaN), CANCELLED, STATE (a
     *     model without the encoder, closed)
     */
    public float[] encode(float[] audio, RunOptions run) {
        int frames = frames(audio, channels, "audio");
        return offline(false, audio, frames, outputLength(((long) frames + hop - 1) / hop, latentDim), run);
    }

    /** {@link #decode(float[], RunOptions)} with every window and no callbacks. */
    public float[] decode(float[] latents) {
        return decode(latents, null);
    }

    /**
     * Decodes latents {@code [n][latentDim]} (n = length / latentDim) to interleaved audio
     * {@code [n * hop][channels]}.
     *
     * @param run null: every window, no callbacks
     * @throws SameEdgeException as {@link #encode(float[], RunOptions)}
     */
    public float[] decode(float[] latents, RunOptions run) {
        int frames = frames(latents, latentDim, "latents");
        return offline(true, latents, frames, outputLength((long) frames * hop, channels), run);
    }

    /**
     * Releases this Model's reference to the native model (streams hold their own). Idempotent; safe against
     * calls running on other threads (they finish first).
     */
    @Override
    public synchronized void close() {
        if (!closed) {
            closed = true;
            if (calls == 0) {
                free();
            }
        }
    }

    private float[] offline(boolean decode, float[] in, int frames, int outLength, RunOptions run) {
        float[] out = new float[outLength];
        long model = enter();
        try {
            Native.offline(model, decode, in, frames, out, outLength / (decode ? channels : latentDim),
                    run == null ? 0 : run.largestWindow(), run == null ? null : run.abortWhen(),
                    run == null ? null : run.progress());
            return out;
        } finally {
            exit();
        }
    }

    private synchronized long enter() {
        if (closed) {
            throw new SameEdgeException(Status.STATE, "the model is closed");
        }
        calls++;
        return handle;
    }

    private synchronized void exit() {
        if (--calls == 0 && closed) {
            free();
        }
    }

    private void free() {
        Native.modelClose(handle);
        handle = 0;
        if (logRef != null) {
            logRef.release();
        }
    }

    static int frames(float[] data, int rows, String what) {
        if (data == null) {
            throw new SameEdgeException(Status.ARGUMENT, what + " is null");
        }
        if (data.length % rows != 0) {
            throw new SameEdgeException(Status.ARGUMENT, what + ": " + data.length + " floats is not a whole number of "
                    + rows + "-float frames");
        }
        return data.length / rows;
    }

    private static int outputLength(long frames, int rows) {
        if (frames * rows > Integer.MAX_VALUE - 8) {
            throw new SameEdgeException(Status.ARGUMENT, "the output (" + frames + " frames) would not fit in a Java array");
        }
        return (int) (frames * rows);
    }

    private static ByteBuffer direct(ByteBuffer b) {
        if (b == null || b.isDirect()) {
            return b;
        }
        ByteBuffer copy = ByteBuffer.allocateDirect(b.remaining());
        copy.put(b.duplicate()).flip();
        return copy;
    }

    private static long[] ranges(FileRange... files) {
        long[] r = new long[3 * files.length];
        for (int i = 0; i < files.length; i++) {
            FileRange f = files[i];
            r[3 * i] = f == null ? -1 : f.fd();
            r[3 * i + 1] = f == null ? 0 : f.offset();
            r[3 * i + 2] = f == null ? 0 : f.length();
        }
        return r;
    }

    /** One of the three opens, given the C options. */
    private interface Opener {
        long open(int[] options, byte[] weightCacheDir, long logRef);
    }

    private static Model opened(ModelOptions options, Opener opener) {
        ModelOptions o = options == null ? new ModelOptions() : options;
        int[] c = {o.threads(), o.sides(), o.skipSha256() ? 1 : 0, o.logLevel().code(), o.litertLogLevel().code()};
        byte[] cache = Native.cString(o.weightCacheDir(), "weightCacheDir");
        LogRef log = o.logListener() == null ? null : new LogRef(o.logListener());
        long handle = 0;
        try {
            handle = opener.open(c, cache, log == null ? 0 : log.ref);
            return new Model(handle, log);
        } finally {
            if (handle == 0 && log != null) {
                log.release();
            }
        }
    }

    /**
     * The JNI global reference of a LogListener, which the library calls until the native model is freed:
     * held by the Model and each of its streams, deleted by the last.
     */
    static final class LogRef {
        final long ref;
        private int holders = 1;

        LogRef(LogListener listener) {
            ref = Native.newGlobalRef(listener);
        }

        synchronized void retain() {
            holders++;
        }

        synchronized void release() {
            if (--holders == 0) {
                Native.deleteGlobalRef(ref);
            }
        }
    }
}
