package ai.sameedge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.lang.management.ManagementFactory;
import java.util.Arrays;
import java.util.Random;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Streams against the Python runtime's, bit for bit: push sizes, both flavours, reuse, threads, reset. */
class StreamTest {
    static Stream<Case> cases() {
        return Case.all();
    }

    /** Random push sizes in [1, largest] summing to total, one frame first (seeded). */
    static int[] pieces(int total, long seed, int largest) {
        Random rng = new Random(seed);
        int[] sizes = new int[total];
        int n = 0;
        for (int sum = 0; sum < total; n++) {
            sizes[n] = n == 0 ? 1 : Math.min(1 + rng.nextInt(largest), total - sum);
            sum += sizes[n];
        }
        return Arrays.copyOf(sizes, n);
    }

    /** Pushes `in` in pieces through push(float[]) and flushes: the concatenated output. */
    static float[] pushArrays(CodecStream s, float[] in, int[] pieces) {
        float[] all = new float[0];
        int start = 0;
        for (int size : pieces) {
            long expected = s.pushOutputSize(size);
            float[] out = s.push(Case.frames(in, s.inputRows(), start, size));
            assertEquals(expected * s.outputRows(), out.length);
            all = concat(all, out);
            start += size;
        }
        long expected = s.flushOutputSize();
        float[] rest = s.flush();
        assertEquals(expected * s.outputRows(), rest.length);
        assertEquals(0, s.flushOutputSize());
        return concat(all, rest);
    }

    /** The same through direct buffers: one input buffer holding everything, one output buffer of `outFloats`. */
    static float[] pushBuffers(CodecStream s, float[] in, int[] pieces, int outFloats) {
        FloatBuffer src = direct(in.length).put(in);
        FloatBuffer dst = direct(outFloats);
        src.flip();
        for (int size : pieces) {
            int expected = (int) s.pushOutputSize(size);
            int before = dst.position();
            assertEquals(expected, s.push(src, size, dst));
            assertEquals(before + expected * s.outputRows(), dst.position());
        }
        assertEquals(in.length, src.position());
        s.flush(dst);
        assertEquals(outFloats, dst.position());
        float[] out = new float[outFloats];
        dst.flip();
        dst.get(out);
        return out;
    }

    static FloatBuffer direct(int floats) {
        return ByteBuffer.allocateDirect(4 * floats).order(ByteOrder.nativeOrder()).asFloatBuffer();
    }

    static float[] concat(float[] a, float[] b) {
        float[] c = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, c, a.length, b.length);
        return c;
    }

    @ParameterizedTest
    @MethodSource("cases")
    void arrayPushesOfPythonsSizesGivePythonsOutputs(Case c) {
        try (Model m = c.open(); EncoderStream enc = m.encoderStream(); DecoderStream dec = m.decoderStream()) {
            assertArrayEquals(c.streamLatents, pushArrays(enc, c.audio, c.encoderPieces));
            assertArrayEquals(c.streamDecoded, pushArrays(dec, c.streamLatents, c.decoderPieces));
            assertArrayEquals(c.latents, c.streamLatents); // streams equal offline
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void directBufferPushesOfRandomSizesGivePythonsOutputs(Case c) {
        try (Model m = c.open(); EncoderStream enc = m.encoderStream(); DecoderStream dec = m.decoderStream()) {
            int frames = c.audio.length / c.channels;
            float[] z = pushBuffers(enc, c.audio, pieces(frames, 11, 3 * c.hop), c.streamLatents.length);
            assertArrayEquals(c.streamLatents, z);
            float[] y = pushBuffers(dec, z, pieces(z.length / c.latentDim, 12, 5), c.streamDecoded.length);
            assertArrayEquals(c.streamDecoded, y);
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void reusedArraysOverwrittenAfterEachPushChangeNothing(Case c) {
        try (Model m = c.open(); EncoderStream enc = m.encoderStream()) {
            float[] block = new float[1000 * c.channels];
            float[] out = new float[c.streamLatents.length]; // the app's one output array
            int frames = c.audio.length / c.channels, written = 0;
            for (int start = 0; start < frames; start += 1000) {
                int n = Math.min(1000, frames - start);
                System.arraycopy(c.audio, start * c.channels, block, 0, n * c.channels);
                written += enc.push(block, 0, n, out, written * c.latentDim);
                Arrays.fill(block, 9.0f); // the app refills its buffer: the stream holds its own copy
            }
            written += enc.flush(out, written * c.latentDim);
            assertEquals(out.length, written * c.latentDim);
            assertArrayEquals(c.streamLatents, out);
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void twoThreadsSharingAModelEachWithItsStreamsAreExact(Case c) throws Exception {
        try (Model m = c.open()) {
            ExecutorService pool = Executors.newFixedThreadPool(2);
            try {
                Future<?>[] runs = new Future<?>[2];
                for (int k = 0; k < 2; k++) {
                    int seed = k;
                    runs[k] = pool.submit(() -> {
                        try (EncoderStream enc = m.encoderStream(); DecoderStream dec = m.decoderStream()) {
                            int frames = c.audio.length / c.channels;
                            float[] z = seed == 0 ? pushArrays(enc, c.audio, pieces(frames, 20 + seed, 2 * c.hop))
                                    : pushBuffers(enc, c.audio, pieces(frames, 20 + seed, 2 * c.hop),
                                            c.streamLatents.length);
                            assertArrayEquals(c.streamLatents, z);
                            assertArrayEquals(c.streamDecoded, pushArrays(dec, z, pieces(z.length / c.latentDim, 30 + seed, 4)));
                        }
                        return null;
                    });
                }
                for (Future<?> run : runs) {
                    run.get(); // rethrows a thread's assertion failure
                }
            } finally {
                pool.shutdown();
            }
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void resetGivesAFreshStreamsOutputsMidStreamAndAfterFlush(Case c) {
        try (Model m = c.open(); EncoderStream enc = m.encoderStream(); DecoderStream dec = m.decoderStream()) {
            enc.push(Case.frames(c.audio, c.channels, 0, 3 * c.hop + 17));
            enc.reset();
            assertArrayEquals(c.streamLatents, pushArrays(enc, c.audio, c.encoderPieces));
            enc.reset(); // after a flush: the next song
            assertArrayEquals(c.streamLatents, pushArrays(enc, c.audio, c.encoderPieces));
            dec.push(Case.frames(c.latents, c.latentDim, 0, 3));
            dec.reset();
            assertArrayEquals(c.streamDecoded, pushArrays(dec, c.latents, c.decoderPieces));
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void aStreamWorksAfterItsModelIsClosed(Case c) {
        EncoderStream enc;
        DecoderStream dec;
        try (Model m = c.open()) {
            enc = m.encoderStream();
            dec = m.decoderStream();
        }
        try (enc; dec) {
            assertArrayEquals(c.streamLatents, pushArrays(enc, c.audio, c.encoderPieces));
            assertArrayEquals(c.streamDecoded, pushArrays(dec, c.latents, c.decoderPieces));
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void theDirectBufferPathAllocatesNothingOnTheJavaHeap(Case c) {
        com.sun.management.ThreadMXBean mx = (com.sun.management.ThreadMXBean) ManagementFactory.getThreadMXBean();
        long thread = Thread.currentThread().getId();
        try (Model m = c.open(); EncoderStream enc = m.encoderStream(); DecoderStream dec = m.decoderStream()) {
            int block = 441; // 10 ms
            int blocks = c.audio.length / c.channels / block;
            FloatBuffer in = direct(c.audio.length).put(c.audio);
            FloatBuffer z = direct(c.streamLatents.length);
            FloatBuffer y = direct(c.streamDecoded.length);
            for (int round = 0; round < 2; round++) { // the first round warms up (class loading, the JIT)
                long before = mx.getThreadAllocatedBytes(thread);
                long overhead = mx.getThreadAllocatedBytes(thread) - before;
                before = mx.getThreadAllocatedBytes(thread);
                in.rewind();
                z.clear();
                y.clear();
                for (int i = 0; i < blocks; i++) {
                    int from = z.position();
                    int latents = enc.push(in, block, z);
                    z.position(from);
                    dec.push(z, latents, y);
                }
                enc.reset();
                dec.reset();
                long allocated = mx.getThreadAllocatedBytes(thread) - before - overhead;
                if (round == 1) {
                    assertEquals(0, allocated, "bytes allocated by " + blocks + " pushes of each stream");
                }
            }
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void rowsLatencyAndSizes(Case c) {
        try (Model m = c.open(); EncoderStream enc = m.encoderStream(0); DecoderStream dec = m.decoderStream(0)) {
            assertEquals(c.channels, enc.inputRows());
            assertEquals(c.latentDim, enc.outputRows());
            assertEquals(c.latentDim, dec.inputRows());
            assertEquals(c.channels, dec.outputRows());
            assertEquals(m.encoderLatencySamples(), enc.latencySamples());
            assertEquals(m.decoderLatencySamples(), dec.latencySamples());
            assertEquals(0, dec.pushOutputSize(0));
            assertEquals(0, enc.push(new float[0]).length);
            assertTrue(enc.pushOutputSize(c.hop * m.framesPerChunk() * 4L) > 0);
            // every window (0) gives the same outputs as a live stream
            assertArrayEquals(c.streamLatents, pushArrays(enc, c.audio, c.encoderPieces));
        }
    }
}
