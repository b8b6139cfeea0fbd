package ai.sameedge;

import java.io.FileDescriptor;
import java.nio.Buffer;
import java.nio.charset.StandardCharsets;
import java.util.function.BooleanSupplier;

/**
 * The JNI shim (bindings/java/jni/same_edge_jni.c): conversions only, one native per C call. Every check a
 * native relies on (open handles, lengths, offsets, direct buffers) is made by its Java caller first; a failed
 * C call throws {@link SameEdgeException} from the native with se_last_error().
 *
 * <p>Loaded with {@code System.loadLibrary("same_edge_jni")}: on desktop the JVM's {@code -Djava.library.path}
 * names the directory of libsame_edge_jni.so, which finds libsame_edge.so.1 and libLiteRt.so through its
 * RUNPATH or LD_LIBRARY_PATH; on Android the three are in the APK's {@code jniLibs/<abi>/}.
 */
final class Native {
    static {
        System.loadLibrary("same_edge_jni");
    }

    private Native() {}

    /** A C string argument: UTF-8 and a terminating NUL; null stays null. */
    static byte[] cString(String s, String what) {
        if (s == null) {
            return null;
        }
        if (s.indexOf('\0') >= 0) {
            throw new SameEdgeException(Status.ARGUMENT, what + " contains a NUL character");
        }
        byte[] utf8 = s.getBytes(StandardCharsets.UTF_8);
        byte[] z = new byte[utf8.length + 1];
        System.arraycopy(utf8, 0, z, 0, utf8.length);
        return z;
    }

    static String string(byte[] utf8) {
        return new String(utf8, StandardCharsets.UTF_8);
    }

    /** Called from the C log callback: never lets an exception out. */
    static void dispatchLog(LogListener listener, int level, byte[] message) {
        try {
            LogLevel[] levels = LogLevel.values();
            listener.onLog(level >= 0 && level < levels.length ? levels[level] : LogLevel.DEFAULT, string(message));
        } catch (Throwable dropped) { // a listener's failure must not unwind through the library
        }
    }

    static native String version();

    static native int versionNumber();

    static native String litertVersion();

    /** The number of a FileDescriptor (its "fd" field, "descriptor" on Android); -1 if closed. */
    static native int fdOf(FileDescriptor descriptor);

    static native long newGlobalRef(Object object);

    static native void deleteGlobalRef(long ref);

    /** options: threads, sides, skipSha256 (0/1), logLevel, litertLogLevel; logRef: a global ref of a LogListener or 0. */
    static native long open(byte[] dir, int[] options, byte[] weightCacheDir, long logRef);

    /** Each part: a direct buffer (or null), the byte offset in it and the length. */
    static native long openMemory(Buffer manifest, long manifestOffset, long manifestLength, Buffer encoder,
            long encoderOffset, long encoderLength, Buffer decoder, long decoderOffset, long decoderLength,
            int[] options, byte[] weightCacheDir, long logRef);

    /** ranges: fd, offset, length of the manifest, the encoder and the decoder. */
    static native long openFd(long[] ranges, int[] options, byte[] weightCacheDir, long logRef);

    static native void modelClose(long model);

    /** sample rate, channels, latent dim, hop, frames per chunk, encoder and decoder latency, threads, sides. */
    static native void modelFacts(long model, int[] facts);

    static native byte[] modelId(long model);

    static native byte[] modelPrecision(long model);

    static native long streamCreate(long model, boolean decoder, int largestWindow);

    static native void streamFree(long stream);

    static native void streamReset(long stream);

    static native int streamInputRows(long stream);

    static native int streamOutputRows(long stream);

    /** -1 for SIZE_MAX (too many frames). */
    static native long pushOutputSize(long stream, long frames);

    static native long flushOutputSize(long stream);

    /** Offsets in floats; frames and capacity in columns. Returns the output columns written. */
    static native int pushArray(long stream, float[] in, int inOffset, int frames, float[] out, int outOffset,
            int capacity);

    static native int pushBuffer(long stream, Buffer in, int inOffset, int frames, Buffer out, int outOffset,
            int capacity);

    static native int flushArray(long stream, float[] out, int outOffset, int capacity);

    static native int flushBuffer(long stream, Buffer out, int outOffset, int capacity);

    /** se_encode or se_decode of an array; abortWhen and progress may be null. */
    static native int offline(long model, boolean decode, float[] in, int frames, float[] out, int capacity,
            int largestWindow, BooleanSupplier abortWhen, ProgressListener progress);
}
