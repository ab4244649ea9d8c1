// The storage of the simulated DRAM (s4accel.sim.hdl.dram.SimDram): one word of WIDTH bits
// per bus beat, a synchronous read port, a write port with byte strobes, and a backdoor.
//
// Backdoor: the testbench changes bd_req (a sequence number); in that time step, outside the
// clock, the memory either loads "s4_dram_load.hex" ($readmemh: "@index" lines and one word per
// line) or, with bd_dump, writes words bd_lo..bd_hi to "s4_dram_dump.hex" ($writememh), both
// in the simulator's working directory. Bulk transfers happen between jobs, never per beat.
// (Hand-written Verilog: Amaranth has no $readmemh; the AXI logic around it is Amaranth.)
module s4_sim_mem #(
    parameter WIDTH = 128,
    parameter ABITS = 19
) (
    input  wire               clk,
    input  wire               ren,
    input  wire [ABITS-1:0]   raddr,
    output reg  [WIDTH-1:0]   rdata,
    input  wire               wen,
    input  wire [ABITS-1:0]   waddr,
    input  wire [WIDTH-1:0]   wdata,
    input  wire [WIDTH/8-1:0] wstrb,
    input  wire [31:0]        bd_req,
    input  wire               bd_dump,
    input  wire [ABITS-1:0]   bd_lo,
    input  wire [ABITS-1:0]   bd_hi,
    output reg  [31:0]        bd_ack
);
    reg [WIDTH-1:0] mem [0:(1 << ABITS) - 1];
    integer i;

    initial begin
        bd_ack = 0;
        rdata = 0;
        for (i = 0; i < (1 << ABITS); i = i + 1)
            mem[i] = 0;
    end

    always @(posedge clk) begin
        if (ren)
            rdata <= mem[raddr];
        if (wen)
            for (i = 0; i < WIDTH / 8; i = i + 1)
                if (wstrb[i])
                    mem[waddr][i * 8 +: 8] <= wdata[i * 8 +: 8];
    end

    always @(bd_req) begin
        if (bd_req != bd_ack) begin
            if (bd_dump)
                $writememh("s4_dram_dump.hex", mem, bd_lo, bd_hi);
            else
                $readmemh("s4_dram_load.hex", mem);
            bd_ack = bd_req;
        end
    end
endmodule
