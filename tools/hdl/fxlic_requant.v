// fxlic_requant.v -- one output element of fxlic's activation requantization
// (docs/SPEC.md): O1 = ReLU + non-linear quantizer of the channel's 2-bit mux
// (rules Q2, Q3, X1, X2) and O2 = signed LQ with or without LeakyReLU(1/8).
//
//   acc   int32 accumulator (SPEC A1)
//   shift requantization shift s = out_exp - acc_exp, -31..62 (SPEC O, A4)
//   mux   codebook of O1 (X1): 0 uniform, 1..3 the non-uniform codebooks
//   kind  0: O1 (code 0..255), 1: O2 LeakyReLU, 2: O2 no activation
//         (O2 codes are int8, two's complement on the 8-bit output)
//
// Purely combinational; the 64-bit datapath holds every intermediate
// (|acc| < 2^31, left shifts up to 31).  Verified by tb_requant.v against
// vectors/units/hdl_requant and against whole layers of vectors/cases.
`timescale 1ns/1ps
module fxlic_requant (
    input  wire signed [31:0] acc,
    input  wire signed [7:0]  shift,
    input  wire        [1:0]  mux,
    input  wire        [1:0]  kind,
    output reg         [7:0]  code
);
    // R1: RHU(a, s) = floor(a / 2^s + 1/2) for s >= 0 (0 for s >= 64)
    function signed [63:0] rhu;
        input signed [63:0] a;
        input integer s;
        begin
            if (s <= 0)
                rhu = a;
            else if (s >= 64)
                rhu = 64'sd0;
            else
                rhu = (a >>> s) + ((a >>> (s - 1)) & 64'sd1);
        end
    endfunction

    // R2: RQ(a, s) = RHU(a, s) if s > 0, else a * 2^-s
    function signed [63:0] rq;
        input signed [63:0] a;
        input integer s;
        begin
            if (s > 0)
                rq = rhu(a, s);
            else
                rq = a <<< (-s);
        end
    endfunction

    reg signed [63:0] a, t, L, v;
    integer s, k, top;

    always @* begin
        code = 8'd0;
        if (kind == 2'd0) begin
            // ---- O1: ReLU, Q2 on the mux codebook, Q3 code
            a = (acc > 0) ? {{32{acc[31]}}, acc} : 64'sd0;
            s = shift;
            if (s <= 0) begin
                a = a <<< (-s);
                s = 0;
            end
            t = (s >= 63) ? 64'sd0 : (a >>> s);  // |t| >= lo  <=>  (|a| >> s) >= lo
            case (mux)  // step exponent k of the segment holding t (X1 table)
                2'd0: k = 1;
                2'd1: k = (t >= 128) ? 1 : ((t >= 64) ? 0 : 1);
                2'd2: k = (t >= 128) ? 1 : 0;
                default: k = (t >= 192) ? 1 : 0;
            endcase
            case (mux)
                2'd0: top = 510;
                2'd1: top = 446;
                2'd2: top = 382;
                default: top = 318;
            endcase
            L = rhu(a, s + k) <<< k;
            if (L > top) L = top;
            case (mux)  // Q3: position of L in the sorted level list
                2'd0: code = L[8:1];
                2'd1: code = (L < 64) ? L[7:1] : ((L < 128) ? (L - 32) : (96 + ((L - 128) >>> 1)));
                2'd2: code = (L < 128) ? L[7:0] : (128 + ((L - 128) >>> 1));
                default: code = (L < 192) ? L[7:0] : (192 + ((L - 192) >>> 1));
            endcase
        end else begin
            // ---- O2: v = RQ(acc, s), or RQ(acc, s + 3) for a negative acc with LeakyReLU
            a = {{32{acc[31]}}, acc};
            s = shift;
            if (kind == 2'd1 && acc < 0)
                s = s + 3;
            v = rq(a, s);
            if (v > 127)
                code = 8'h7f;
            else if (v < -128)
                code = 8'h80;
            else
                code = v[7:0];
        end
    end
endmodule
