package ai.sameedge;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.MethodSource;

/** Model facts and offline encode/decode against the Python runtime, bit for bit; run options. */
class OfflineTest {
    static Stream<Case> cases() {
        return Case.all();
    }

    @Test
    void versionsAreTheLibrarysAndLiteRts() {
        String expected = System.getProperty("sameedge.version");
        assertEquals(expected, Model.version());
        String[] v = expected.split("\\.");
        assertEquals(Integer.parseInt(v[0]) * 10000 + Integer.parseInt(v[1]) * 100 + Integer.parseInt(v[2]),
                Model.versionNumber());
        assertEquals(System.getProperty("sameedge.litert_version"), Model.litertVersion());
    }

    @ParameterizedTest
    @MethodSource("cases")
    void factsMatchThePythonRuntime(Case c) {
        try (Model m = c.open()) {
            assertEquals(c.integer("sample_rate"), m.sampleRate());
            assertEquals(c.channels, m.channels());
            assertEquals(c.latentDim, m.latentDim());
            assertEquals(c.hop, m.hop());
            assertEquals(c.integer("encoder_latency_samples"), m.encoderLatencySamples());
            assertEquals(c.integer("decoder_latency_samples"), m.decoderLatencySamples());
            assertEquals(c.facts.getProperty("model_id"), m.id());
            assertEquals(c.facts.getProperty("precision"), m.precision());
            assertEquals(Case.THREADS, m.threads());
            assertEquals(Model.SIDE_BOTH, m.sides());
            assertTrue(m.framesPerChunk() >= 1);
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void encodeAndDecodeAreBitIdenticalToPython(Case c) {
        try (Model m = c.open()) {
            float[] z = m.encode(c.audio);
            assertArrayEquals(c.latents, z);
            assertArrayEquals(c.decoded, m.decode(z));
            assertEquals(0, m.encode(new float[0]).length);
        }
    }

    @ParameterizedTest
    @MethodSource("cases")
    void runOptionsReportProgressCancelAndKeepOutputs(Case c) {
        try (Model m = c.open()) {
            int frames = c.audio.length / c.channels;
            List<long[]> progress = new ArrayList<>();
            float[] z = m.encode(c.audio, new RunOptions().largestWindow(1)
                    .progress((done, total) -> progress.add(new long[] {done, total})));
            assertArrayEquals(c.latents, z); // one window at a time: the same outputs
            assertTrue(progress.size() > 1);
            long last = 0;
            for (long[] p : progress) {
                assertTrue(p[0] >= last && p[0] <= frames && p[1] == frames);
                last = p[0];
            }
            assertEquals(frames, last);

            AtomicBoolean stop = new AtomicBoolean(true);
            SameEdgeException e = assertThrows(SameEdgeException.class,
                    () -> m.decode(c.latents, new RunOptions().abortWhen(stop::get)));
            assertEquals(Status.CANCELLED, e.status());
            assertEquals("SE_ERR_CANCELLED", e.status().cName());

            int[] calls = {0}; // cancelled by another "thread" after the first graph call
            RunOptions later = new RunOptions().largestWindow(1).abortWhen(() -> calls[0] > 0)
                    .progress((done, total) -> calls[0]++);
            assertEquals(Status.CANCELLED, assertThrows(SameEdgeException.class, () -> m.encode(c.audio, later)).status());
            assertEquals(1, calls[0]);

            IllegalStateException mine = new IllegalStateException("the listener's own");
            IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> m.encode(c.audio,
                    new RunOptions().progress((done, total) -> {
                        throw mine;
                    })));
            assertSame(mine, thrown); // a listener's exception propagates as it is
            assertSame(mine, assertThrows(IllegalStateException.class, () -> m.decode(c.latents,
                    new RunOptions().abortWhen(() -> {
                        throw mine;
                    }))));
            assertArrayEquals(c.decoded, m.decode(c.latents, new RunOptions())); // the model is unharmed
        }
    }
}
