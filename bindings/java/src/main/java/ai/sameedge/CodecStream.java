package ai.sameedge;

import java.nio.Buffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A stream of the encoder ({@link EncoderStream}: audio in, latents out) or the decoder ({@link DecoderStream}:
 * latents in, audio out), libsame_edge's {@code se_stream}. Push blocks of any size (0 too) as they come;
 * {@link #flush()} at the end returns the rest; {@link #reset()} starts again. Input and output are interleaved
 * float32 {@code [frames][rows]}: {@link #inputRows()} floats per input frame, {@link #outputRows()} per output
 * frame (audio: channels per frame at the model's sample rate; latents: latentDim per frame). The concatenated
 * outputs equal {@link Model#encode}/{@link Model#decode}'s bit for bit, whatever the push sizes.
 *
 * <p><b>Threads.</b> One stream takes one call at a time. A call that starts while another thread's call on the
 * same stream runs is refused with {@link Status#STATE} and changes nothing (it does not wait). Streams of one
 * model run concurrently on different threads (an encoder on the capture thread, a decoder on the playback
 * thread). {@link #close()} may be called from any thread at any time: during a call it returns at once and
 * the stream is freed when that call returns. A stream keeps its native model alive: it goes on working after
 * its {@link Model} is closed.
 *
 * <p><b>Memory per call.</b> The library allocates nothing in push, flush and reset (LiteRT's own allocations
 * inside a graph run are measured in docs/EMBEDDING.md). {@link #push(FloatBuffer, int, FloatBuffer)} and
 * {@link #flush(FloatBuffer)} allocate nothing on the Java side and copy nothing in JNI: the path for a real-time
 * thread. {@link #push(float[])} and {@link #flush()} allocate their result array;
 * {@link #push(float[], int, int, float[], int)} and {@link #flush(float[], int)} allocate no Java object; every
 * array call copies its input and output through one temporary native buffer (malloc) in the JNI shim.
 *
 * <p>Misuse throws {@link SameEdgeException}, never crashes the JVM: a closed stream ({@link Status#STATE}), a
 * null array, a length that is not a whole number of frames, an offset out of range, a heap or non-native-order
 * buffer ({@link Status#ARGUMENT}), too small an output ({@link Status#BUFFER_TOO_SMALL}: nothing consumed).
 */
public abstract class CodecStream implements AutoCloseable {
    private static final int IDLE = 0;
    private static final int BUSY = 1;
    private static final int CLOSED = 2;
    private static final int CLOSE_PENDING = 3; // closed during a call: freed when it returns

    private final AtomicInteger state = new AtomicInteger(IDLE);
    private final int inputRows;
    private final int outputRows;
    private final int latencySamples;
    private final Model.LogRef logRef;
    private long handle; // 0 once freed

    CodecStream(long handle, int latencySamples, Model.LogRef logRef) {
        this.handle = handle;
        this.inputRows = Native.streamInputRows(handle);
        this.outputRows = Native.streamOutputRows(handle);
        this.latencySamples = latencySamples;
        this.logRef = logRef;
        if (logRef != null) {
            logRef.retain();
        }
    }

    /** Floats per input frame: channels for an encoder, latentDim for a decoder. */
    public final int inputRows() {
        return inputRows;
    }

    /** Floats per output frame: latentDim for an encoder, channels for a decoder. */
    public final int outputRows() {
        return outputRows;
    }

    /** The most audio frames this stream holds back (the model's encoder or decoder latency). */
    public final int latencySamples() {
        return latencySamples;
    }

    /** Exactly how many output frames the next push of {@code frames} input frames returns (0 after a flush). */
    public final long pushOutputSize(long frames) {
        if (frames < 0) {
            throw new SameEdgeException(Status.ARGUMENT, "a negative frame count: " + frames);
        }
        long h = enter();
        try {
            long n = Native.pushOutputSize(h, frames);
            if (n < 0) {
                throw new SameEdgeException(Status.ARGUMENT, frames + " frames, or their output, would not fit in memory");
            }
            return n;
        } finally {
            exit();
        }
    }

    /** Exactly how many output frames {@link #flush()} returns (0 after a flush). */
    public final long flushOutputSize() {
        long h = enter();
        try {
            return Native.flushOutputSize(h);
        } finally {
            exit();
        }
    }

    /**
     * Pushes interleaved input {@code [frames][inputRows]} (frames = length / inputRows; any count, 0 too) and
     * returns the output that is now final, {@code [n][outputRows]}. The input is copied: the array may be
     * refilled at once.
     */
    public final float[] push(float[] in) {
        int frames = Model.frames(in, inputRows, "the input");
        long h = enter();
        try {
            float[] out = new float[outputLength(Native.pushOutputSize(h, frames))];
            Native.pushArray(h, in, 0, frames, out, 0, out.length / outputRows);
            return out;
        } finally {
            exit();
        }
    }

    /**
     * Pushes {@code frames} input frames from {@code in} at {@code inOffset} (in floats) and writes the output
     * that is now final to {@code out} at {@code outOffset}; returns the output frames written (floats:
     * that times {@link #outputRows()}). Allocates no Java object.
     *
     * @throws SameEdgeException BUFFER_TOO_SMALL if {@code out} has less room than {@link #pushOutputSize}
     *     (nothing is consumed)
     */
    public final int push(float[] in, int inOffset, int frames, float[] out, int outOffset) {
        checkRange(in, inOffset, frames, inputRows, "the input");
        int capacity = capacity(out, outOffset);
        long h = enter();
        try {
            return Native.pushArray(h, in, inOffset, frames, out, outOffset, capacity);
        } finally {
            exit();
        }
    }

    /**
     * Pushes {@code frames} input frames from a direct, native-order buffer at its position, and writes the output
     * that is now final to a direct, native-order buffer at its position; advances both positions past what was
     * read and written, and returns the output frames written. No copy, no allocation: the buffers are read and
     * written where they are (make them with
     * {@code ByteBuffer.allocateDirect(4 * n).order(ByteOrder.nativeOrder()).asFloatBuffer()}).
     *
     * @throws SameEdgeException ARGUMENT (a heap or big-endian buffer, fewer than frames * inputRows floats
     *     remaining, a read-only output), BUFFER_TOO_SMALL (out's remaining room is less than the output: nothing
     *     is consumed)
     */
    public final int push(FloatBuffer in, int frames, FloatBuffer out) {
        checkBuffer(in, "the input");
        checkBuffer(out, "the output");
        checkWritable(out);
        if (frames < 0 || (long) frames * inputRows > in.remaining()) {
            throw new SameEdgeException(Status.ARGUMENT, "the input has " + in.remaining() + " floats remaining, not "
                    + frames + " frames of " + inputRows);
        }
        long h = enter();
        try {
            int n = Native.pushBuffer(h, in, in.position(), frames, out, out.position(), out.remaining() / outputRows);
            advance(in, frames * inputRows);
            advance(out, n * outputRows);
            return n;
        } finally {
            exit();
        }
    }

    /** Finishes the stream and returns the rest of the output, {@code [n][outputRows]}; no push after it but for a {@link #reset()}. */
    public final float[] flush() {
        long h = enter();
        try {
            float[] out = new float[outputLength(Native.flushOutputSize(h))];
            Native.flushArray(h, out, 0, out.length / outputRows);
            return out;
        } finally {
            exit();
        }
    }

    /** {@link #flush()} into {@code out} at {@code outOffset}; returns the output frames written. */
    public final int flush(float[] out, int outOffset) {
        int capacity = capacity(out, outOffset);
        long h = enter();
        try {
            return Native.flushArray(h, out, outOffset, capacity);
        } finally {
            exit();
        }
    }

    /** {@link #flush()} into a direct, native-order buffer at its position, advanced past the output; returns the frames written. */
    public final int flush(FloatBuffer out) {
        checkBuffer(out, "the output");
        checkWritable(out);
        long h = enter();
        try {
            int n = Native.flushBuffer(h, out, out.position(), out.remaining() / outputRows);
            advance(out, n * outputRows);
            return n;
        } finally {
            exit();
        }
    }

    /**
     * Back to the start, as if just created, without allocating: after a flush, a failure or mid-stream. The next
     * outputs equal a new stream's bit for bit.
     */
    public final void reset() {
        long h = enter();
        try {
            Native.streamReset(h);
        } finally {
            exit();
        }
    }

    /** Frees the stream and its reference to the model. Idempotent; during another thread's call, see the class doc. */
    @Override
    public final void close() {
        for (;;) {
            int s = state.get();
            if (s == IDLE && state.compareAndSet(IDLE, CLOSED)) {
                free();
                return;
            }
            if (s == BUSY && state.compareAndSet(BUSY, CLOSE_PENDING)) {
                return;
            }
            if (s == CLOSED || s == CLOSE_PENDING) {
                return;
            }
        }
    }

    private long enter() {
        if (state.compareAndSet(IDLE, BUSY)) {
            return handle;
        }
        throw new SameEdgeException(Status.STATE, state.get() == BUSY ? "the stream is in a call on another thread"
                : "the stream is closed");
    }

    private void exit() {
        if (!state.compareAndSet(BUSY, IDLE)) { // closed during the call
            free();
        }
    }

    private void free() {
        Native.streamFree(handle);
        handle = 0;
        if (logRef != null) {
            logRef.release();
        }
    }

    private int outputLength(long frames) {
        if (frames < 0 || frames * outputRows > Integer.MAX_VALUE - 8) {
            throw new SameEdgeException(Status.ARGUMENT, "the output would not fit in a Java array");
        }
        return (int) frames * outputRows;
    }

    private int capacity(float[] out, int outOffset) {
        if (out == null) {
            throw new SameEdgeException(Status.ARGUMENT, "the output array is null");
        }
        if (outOffset < 0 || outOffset > out.length) {
            throw new SameEdgeException(Status.ARGUMENT, "the output offset " + outOffset + " is outside the array ("
                    + out.length + " floats)");
        }
        return (out.length - outOffset) / outputRows;
    }

    private static void checkRange(float[] in, int offset, int frames, int rows, String what) {
        if (in == null) {
            throw new SameEdgeException(Status.ARGUMENT, what + " array is null");
        }
        if (offset < 0 || frames < 0 || offset + (long) frames * rows > in.length) {
            throw new SameEdgeException(Status.ARGUMENT, what + ": " + frames + " frames of " + rows + " floats at "
                    + offset + " do not fit in " + in.length + " floats");
        }
    }

    private static void checkBuffer(FloatBuffer b, String what) {
        if (b == null) {
            throw new SameEdgeException(Status.ARGUMENT, what + " buffer is null");
        }
        if (!b.isDirect()) {
            throw new SameEdgeException(Status.ARGUMENT, what + " buffer is not direct (ByteBuffer.allocateDirect)");
        }
        if (b.order() != ByteOrder.nativeOrder()) {
            throw new SameEdgeException(Status.ARGUMENT, what + " buffer is not in native byte order (.order(ByteOrder.nativeOrder()))");
        }
    }

    private static void checkWritable(FloatBuffer out) {
        if (out.isReadOnly()) {
            throw new SameEdgeException(Status.ARGUMENT, "the output buffer is read-only");
        }
    }

    /** Through Buffer: FloatBuffer's covariant position(int) is missing on older Android. */
    private static void advance(Buffer b, int floats) {
        b.position(b.position() + floats);
    }
}
