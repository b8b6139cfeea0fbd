package ai.sameedge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.function.Executable;
import org.junit.jupiter.api.io.TempDir;

/** Every misuse is a SameEdgeException with a status and a message, never a crash of the JVM. */
class MisuseTest {
    static SameEdgeException refused(Status status, Executable call) {
        SameEdgeException e = assertThrows(SameEdgeException.class, call);
        assertEquals(status, e.status(), e.getMessage());
        assertTrue(e.getMessage().startsWith(status.cName() + ": ") && !e.detail().isEmpty(), e.getMessage());
        return e;
    }

    @Test
    void everyCallAfterCloseIsRefusedWithState() {
        Case c = Case.first();
        Model m = c.open();
        EncoderStream enc = m.encoderStream();
        m.close();
        m.close(); // idempotent
        refused(Status.STATE, () -> m.encode(c.audio));
        refused(Status.STATE, () -> m.decode(c.latents));
        refused(Status.STATE, m::encoderStream);
        refused(Status.STATE, () -> m.decoderStream(0));
        assertEquals(c.channels, m.channels()); // facts stay readable
        enc.close();
        enc.close();
        FloatBuffer in = StreamTest.direct(16), out = StreamTest.direct(1024);
        refused(Status.STATE, () -> enc.push(new float[c.channels]));
        refused(Status.STATE, () -> enc.push(new float[c.channels], 0, 1, new float[c.latentDim], 0));
        refused(Status.STATE, () -> enc.push(in, 1, out));
        refused(Status.STATE, enc::flush);
        refused(Status.STATE, () -> enc.flush(new float[c.latentDim], 0));
        refused(Status.STATE, () -> enc.flush(out));
        refused(Status.STATE, enc::reset);
        refused(Status.STATE, () -> enc.pushOutputSize(1));
        refused(Status.STATE, enc::flushOutputSize);
    }

    @Test
    void nullsAreRefusedWithArgument() {
        Case c = Case.first();
        refused(Status.ARGUMENT, () -> Model.open(null));
        refused(Status.ARGUMENT, () -> Model.openMemory((ByteBuffer) null, null, null, null));
        refused(Status.ARGUMENT, () -> Model.openMemory((byte[]) null, null, null, null));
        refused(Status.ARGUMENT, () -> Model.openFd(null, null, null, null));
        refused(Status.ARGUMENT, () -> FileRange.of((FileDescriptor) null, 0, 1));
        try (Model m = c.open(); DecoderStream dec = m.decoderStream()) {
            refused(Status.ARGUMENT, () -> m.encode(null));
            refused(Status.ARGUMENT, () -> m.decode(null, new RunOptions()));
            refused(Status.ARGUMENT, () -> dec.push((float[]) null));
            refused(Status.ARGUMENT, () -> dec.push(null, 0, 0, new float[8], 0));
            refused(Status.ARGUMENT, () -> dec.push(new float[c.latentDim], 0, 1, null, 0));
            refused(Status.ARGUMENT, () -> dec.push(null, 0, StreamTest.direct(8)));
            refused(Status.ARGUMENT, () -> dec.push(StreamTest.direct(c.latentDim), 1, null));
            refused(Status.ARGUMENT, () -> dec.flush(null, 0));
            refused(Status.ARGUMENT, () -> dec.flush((FloatBuffer) null));
        }
    }

    @Test
    void wrongLengthsOffsetsAndSizesAreRefusedAndConsumeNothing() {
        Case c = Case.first();
        try (Model m = c.open(); EncoderStream enc = m.encoderStream()) {
            refused(Status.ARGUMENT, () -> m.encode(new float[c.channels + 1]));
            refused(Status.ARGUMENT, () -> m.decode(new float[c.latentDim - 1]));
            refused(Status.ARGUMENT, () -> enc.push(new float[3 * c.channels - 1]));
            float[] a = new float[10 * c.channels];
            float[] z = new float[4 * c.latentDim];
            refused(Status.ARGUMENT, () -> enc.push(a, -1, 1, z, 0));
            refused(Status.ARGUMENT, () -> enc.push(a, 1, 10, z, 0)); // past the end
            refused(Status.ARGUMENT, () -> enc.push(a, 0, -1, z, 0));
            refused(Status.ARGUMENT, () -> enc.push(a, 0, 1, z, z.length + 1));
            refused(Status.ARGUMENT, () -> enc.push(a, 0, Integer.MAX_VALUE, z, 0));
            refused(Status.ARGUMENT, () -> enc.push(StreamTest.direct(a.length), 11, StreamTest.direct(8)));
            refused(Status.ARGUMENT, () -> enc.pushOutputSize(-1));
            // too small an output: refused, nothing consumed, the stream goes on exactly
            int frames = c.audio.length / c.channels, first = Math.min(frames, 3 * c.hop * m.framesPerChunk());
            float[] head = Case.frames(c.audio, c.channels, 0, first);
            long want = enc.pushOutputSize(first);
            assertTrue(want > 0);
            refused(Status.BUFFER_TOO_SMALL, () -> enc.push(head, 0, first, new float[(int) want * c.latentDim - 1], 0));
            refused(Status.BUFFER_TOO_SMALL, () -> enc.push(StreamTest.direct(head.length).put(head).flip(), first,
                    StreamTest.direct((int) want * c.latentDim - 1)));
            float[] z1 = enc.push(head);
            float[] z2 = enc.push(Case.frames(c.audio, c.channels, first, frames - first));
            refused(Status.BUFFER_TOO_SMALL, () -> enc.flush(new float[0], 0));
            float[] all = StreamTest.concat(StreamTest.concat(z1, z2), enc.flush());
            assertArrayEquals(c.streamLatents, all);
            refused(Status.STATE, () -> enc.push(head)); // push after flush, until a reset
            refused(Status.STATE, enc::flush);
            enc.reset();
            assertEquals(want * c.latentDim, enc.push(head).length);
        }
    }

    @Test
    void heapBigEndianAndReadOnlyBuffersAreRefusedWithArgument() {
        Case c = Case.first();
        try (Model m = c.open(); EncoderStream enc = m.encoderStream()) {
            FloatBuffer in = StreamTest.direct(c.channels * 4), out = StreamTest.direct(c.latentDim * 4);
            refused(Status.ARGUMENT, () -> enc.push(FloatBuffer.allocate(c.channels * 4), 1, out));
            refused(Status.ARGUMENT, () -> enc.push(in, 1, FloatBuffer.allocate(c.latentDim * 4)));
            refused(Status.ARGUMENT, () -> enc.push(ByteBuffer.allocateDirect(64).order(ByteOrder.BIG_ENDIAN == ByteOrder
                    .nativeOrder() ? ByteOrder.LITTLE_ENDIAN : ByteOrder.BIG_ENDIAN).asFloatBuffer(), 1, out));
            refused(Status.ARGUMENT, () -> enc.push(in, 1, out.asReadOnlyBuffer()));
            refused(Status.ARGUMENT, () -> enc.flush(FloatBuffer.allocate(8)));
            refused(Status.ARGUMENT, () -> enc.flush(out.asReadOnlyBuffer()));
            assertEquals(0, enc.push(in.asReadOnlyBuffer(), 1, out)); // a read-only input is fine
        }
    }

    @Test
    void badInputsAndOptionsAreRefusedByTheLibrary(@TempDir Path tmp) throws IOException {
        Case c = Case.first();
        SameEdgeException e = refused(Status.MODEL, () -> Model.open(tmp.resolve("missing").toString()));
        assertTrue(e.detail().contains("missing"), e.detail());
        refused(Status.ARGUMENT, () -> Model.open(c.modelDir.toString(), new ModelOptions().threads(-1)));
        refused(Status.ARGUMENT, () -> Model.open(c.modelDir + "\0x", null));
        Files.write(tmp.resolve("cache.xnn"), new byte[0]);
        refused(Status.ARGUMENT, () -> Model.open(c.modelDir.toString(),
                Case.options().weightCacheDir(tmp.resolve("cache.xnn").toString())));
        refused(Status.MODEL, () -> Model.openMemory(new byte[] {'{'}, new byte[8], new byte[8], null));
        FileInputStream f = new FileInputStream(c.modelDir.resolve("manifest.json").toFile());
        FileRange closed = FileRange.of(f.getFD(), 0, 10);
        f.close();
        assertThrows(SameEdgeException.class, () -> Model.openFd(closed, closed, closed, null));
        refused(Status.ARGUMENT, () -> FileRange.of(3, -1, 10));
        try (Model m = c.open(); DecoderStream dec = m.decoderStream()) {
            float[] z = Case.frames(c.latents, c.latentDim, 0, 2);
            z[5] = Float.POSITIVE_INFINITY;
            refused(Status.ARGUMENT, () -> dec.push(z));
            refused(Status.ARGUMENT, () -> m.decode(z));
            refused(Status.ARGUMENT, () -> m.encoderStream(-1));
        }
    }

    @Test
    void aCallDuringACallOnTheSameStreamIsRefusedWithStateAndCloseWaitsForIt() {
        Case c = Case.first();
        AtomicReference<CodecStream> current = new AtomicReference<>();
        List<Object> seen = new ArrayList<>();
        // The log listener runs inside the stream's call (a failing push logs an error): what it does to the
        // stream happens during that call, on the same thread, deterministically.
        ModelOptions options = Case.options().logListener((level, message) -> {
            CodecStream s = current.get();
            if (s == null) {
                return;
            }
            try {
                s.push(new float[s.inputRows()]);
                seen.add("push worked");
            } catch (SameEdgeException e) {
                seen.add(e.status());
                seen.add(e.detail());
            }
            s.close(); // during the call: freed once it returns
        });
        try (Model m = Model.open(c.modelDir.toString(), options)) {
            EncoderStream enc = m.encoderStream();
            float[] nan = new float[c.channels];
            nan[0] = Float.NaN;
            current.set(enc);
            refused(Status.ARGUMENT, () -> enc.push(nan));
            current.set(null);
            assertEquals(List.of(Status.STATE, "the stream is in a call on another thread"), seen);
            refused(Status.STATE, () -> enc.push(new float[c.channels])); // closed by the listener
        }
    }

    @Test
    void threadsRacingOneStreamAndItsCloseGetStatusesNotCrashes() throws Exception {
        Case c = Case.first();
        try (Model m = c.open()) {
            for (int round = 0; round < 3; round++) {
                EncoderStream enc = m.encoderStream();
                float[] chunk = Case.frames(c.audio, c.channels, 0, Math.min(c.audio.length / c.channels,
                        c.hop * m.framesPerChunk()));
                List<Throwable> unexpected = new ArrayList<>();
                Thread[] threads = new Thread[3];
                for (int k = 0; k < threads.length; k++) {
                    threads[k] = new Thread(() -> {
                        for (int i = 0; i < 50; i++) {
                            try {
                                enc.push(chunk);
                            } catch (SameEdgeException e) {
                                if (e.status() != Status.STATE) {
                                    synchronized (unexpected) {
                                        unexpected.add(e);
                                    }
                                }
                            }
                        }
                    });
                    threads[k].start();
                }
                Thread.sleep(5 * round);
                enc.close();
                for (Thread t : threads) {
                    t.join();
                }
                assertEquals(List.of(), unexpected);
                refused(Status.STATE, enc::flush);
            }
        }
    }
}
